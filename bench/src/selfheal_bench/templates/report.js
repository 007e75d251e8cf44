(() => {
  const steps = JSON.parse(document.getElementById('steps-data').textContent);
  const pretty = (value) => {
    if (typeof value === 'string') {
      try { return JSON.stringify(JSON.parse(value), null, 2); } catch (e) { return value; }
    }
    return JSON.stringify(value, null, 2);
  };
  const time = (t) => (t ? new Date(t * 1000).toISOString().slice(11, 23) + ' UTC' : '—');
  const add = (parent, tag, text) => {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    parent.appendChild(node);
    return node;
  };
  const show = (block, index, stateName) => {
    const panel = block.querySelector('.panel');
    panel.replaceChildren();
    block.querySelectorAll('.selected').forEach((node) => node.classList.remove('selected'));
    const all = steps[Number(block.dataset.exec)];
    if (index < 0) {
      add(panel, 'h4', stateName);
      add(panel, 'p', 'Not entered in this execution.');
      return;
    }
    const step = all[index];
    block.querySelector('tr[data-step="' + index + '"]').classList.add('selected');
    block.querySelectorAll('[data-state]').forEach((node) => {
      if (node.dataset.state === step.name) node.classList.add('selected');
    });
    const visits = all.filter((s) => s.name === step.name).length;
    add(panel, 'h4', step.name + ' (' + step.type + ')');
    add(panel, 'p', step.outcome + ' · entered ' + time(step.entered) + ' · exited ' + time(step.exited) +
        (visits > 1 ? ' · visited ' + visits + ' times: pick a row for each visit' : ''));
    (step.errors || []).forEach((error, i) => {
      add(panel, 'b', 'Error ' + (i + 1) + ': ' + (error.error || error.event));
      add(panel, 'pre', pretty(error.cause));
    });
    add(panel, 'b', 'Input');
    add(panel, 'pre', pretty(step.input));
    add(panel, 'b', 'Output');
    add(panel, 'pre', step.output === null ? '(none)' : pretty(step.output));
  };
  const pick = (target) => {
    const link = target.closest('a[href^="#exec-"]');
    if (link) { document.querySelector(link.getAttribute('href')).open = true; return; }
    const block = target.closest('[data-exec]');
    if (!block) return;
    const row = target.closest('tr[data-step]');
    if (row) { show(block, Number(row.dataset.step)); return; }
    const state = target.closest('[data-state]');
    if (!state) return;
    const all = steps[Number(block.dataset.exec)];
    let index = -1;
    all.forEach((s, i) => { if (s.name === state.dataset.state) index = i; });
    show(block, index, state.dataset.state);
  };
  document.addEventListener('click', (event) => pick(event.target));
  document.addEventListener('keydown', (event) => { if (event.key === 'Enter') pick(event.target); });
})();
