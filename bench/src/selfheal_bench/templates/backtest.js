// backtest.html: the decisions table can be narrowed to one policy.
document.querySelectorAll("[data-policy-filter]").forEach((button) => {
  button.addEventListener("click", () => {
    const wanted = button.dataset.policyFilter;
    document.querySelectorAll("#decisions tbody tr").forEach((row) => {
      row.hidden = wanted !== "all" && row.dataset.policy !== wanted;
    });
  });
});
