"""Start a SageMaker framework container's user code with the real script-mode toolkit's own code.

The local cloud runs this with .venv-toolkit's Python 3.9, where sagemaker-containers 2.8.6.post2 imports: it is
the toolkit the XGBoost 3.0-5 container starts training (training.py: framework.training_env(), then
modules.run_module) and serving (serving.py: env.ServingEnv(), then modules.import_module) with. Both begin by
_files.download_and_extract(module_dir, /opt/ml/code); that is the step run here, for real. (Installing the code
with pip and running it need the project's Python 3.11: the local cloud does that part.)

    SAGEMAKER_BASE_DIR=<the job's /opt/ml> python start_container.py training|serving [<local code archive>]

The container's /opt/ml is SAGEMAKER_BASE_DIR here, so a module_dir under /opt/ml/ is read from there. The code
archive argument stands for an s3:// module_dir the local cloud fetched itself: it is given only when the container
has network access (no network isolation), since this process cannot reach the local cloud's S3.

Prints one JSON line: {"module_name", "module_dir", "user_entry_point"[, "args", "env"]}. On failure it exits 1
with the toolkit's failure message (_trainer.train's format) on stderr and, for training, in <base>/output/failure,
as the container does.

This file must run on Python 3.9 and must not import selfheal.
"""

import json
import sys
import traceback

CONTAINER_BASE = "/opt/ml"


def in_base(path, base_dir):
    """A container path under /opt/ml/, read from this container's base directory."""
    if path.startswith(CONTAINER_BASE + "/"):
        return base_dir + path[len(CONTAINER_BASE):]
    return path


def start(kind, fetched):
    from sagemaker_containers import _env, _files

    env = _env.TrainingEnv() if kind == "training" else _env.ServingEnv()
    started = {"module_name": env.module_name, "module_dir": env.module_dir, "user_entry_point": env.user_entry_point}
    if kind == "training":
        started.update(args=env.to_cmd_args(), env=env.to_env_vars())
    if env.user_entry_point:  # no program: the container's algorithm mode, which runs no user code
        _files.download_and_extract(fetched or in_base(env.module_dir, _env.base_dir), _env.code_dir)
    return started


def main(argv):
    kind, fetched = argv[0], (argv[1] if len(argv) > 1 else None)
    try:
        started = start(kind, fetched)
    except Exception as error:  # every failure ends the container, as in _trainer.train
        from sagemaker_containers import _errors, _files

        # _trainer.train's message: a toolkit ClientError as it is, anything else as a "framework error".
        failure = str(error) if isinstance(error, _errors.ClientError) else (
            f"framework error: \n{traceback.format_exc()}\n{error}")
        sys.stderr.write(failure + "\n")
        if kind == "training":  # SageMaker reports the failure file's first 1024 characters as FailureReason
            _files.write_failure_file(failure)
        return 1
    sys.stdout.write(json.dumps(started) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
