"""The model server's worker inside a serving container: one process per loaded model, run by serving.py.

It runs the XGBoost 3.0-5 container's script-mode serving stack for real: sagemaker-inference 1.5.5's
DefaultHandlerService and Transformer (aws/sagemaker-xgboost-container handler_service.py builds exactly these,
with its own default handler), so a request's status, its Accept default and its response content type are the
toolkit's own. Around them stands what Multi Model Server's Python worker does (multi-model-server 1.1.2:
mms/context.py, mms/service.py, mms/protocol/otf_message_handler.py): the context the toolkit reads the headers
from and sets the status on, the batch of one request, and the rule for turning the handler's answer into bytes.

    python -I serving_worker.py

Messages are frames on stdin and stdout (a 4-byte length, then the bytes). The worker starts as a spare: it
imports the serving stack and the libraries models commonly need (what the container image has installed), then
waits for its container: a JSON frame {"code_dir", "model_dir", "env", "log"}. It takes the container's
environment, sends what it prints to the container's log, puts the code directory (which stands for /opt/ml/code,
pip-installed by the container before serving: sagemaker-containers _modules.import_module) on the import path,
loads the model and answers {"ready": bool}. Then each request is a JSON header frame and a body frame, each answer
likewise. This file must not import selfheal.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import sys
import traceback
from typing import Any, BinaryIO

from sagemaker_inference.default_handler_service import DefaultHandlerService
from sagemaker_inference.default_inference_handler import DefaultInferenceHandler
from sagemaker_inference.transformer import Transformer

# Warm imports, before any container is assigned: an image has these installed, and a model's code imports them.
_WARM = ("numpy", "pyarrow", "pyarrow.csv", "xgboost")

_LENGTH = struct.Struct("!I")


def read_frame(stream: BinaryIO) -> bytes | None:
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (size,) = _LENGTH.unpack(head)
    return stream.read(size)


def write_frame(stream: BinaryIO, data: bytes) -> None:
    stream.write(_LENGTH.pack(len(data)) + data)
    stream.flush()


class RequestProcessor:
    """mms.context.RequestProcessor: one request's headers in, its status and response headers out."""

    def __init__(self, request_header: dict[str, Any]) -> None:
        self.status_code, self.reason_phrase = 200, None
        self.response_header: dict[str, str] = {}
        self._request_header = request_header

    def get_request_properties(self) -> dict[str, Any]:
        return self._request_header

    def get_request_property(self, key: str) -> Any:
        return self._request_header.get(key)

    def report_status(self, code: int, reason_phrase: str | None = None) -> None:
        self.status_code, self.reason_phrase = code, reason_phrase

    def add_response_property(self, key: str, value: str) -> None:
        self.response_header[key] = value


class Context:
    """mms.context.Context, the parts the serving toolkit uses."""

    def __init__(self, model_dir: str) -> None:
        self.system_properties = {"model_dir": model_dir, "gpu_id": None, "batch_size": 1, "server_name": "MMS"}
        self.request_processor: list[RequestProcessor] = []

    def set_response_content_type(self, idx: int, value: str) -> None:
        self.request_processor[idx].add_response_property("content-type", value)

    def set_response_status(self, code: int = 200, phrase: str = "", idx: int = 0) -> None:
        self.request_processor[idx].report_status(code, reason_phrase=phrase)


class XGBoostUserModuleDefaults(DefaultInferenceHandler):
    """The defaults the XGBoost container gives a user module (handler_service.py,
    DefaultXGBoostUserModuleInferenceHandler). Its model_fn default refuses, as there; its input, predict and
    output defaults use the container's own XGBoost encoders, which are not here: a module that leans on them is
    refused too (stricter than the container)."""

    def default_model_fn(self, model_dir: str) -> Any:
        raise NotImplementedError("Please provide a model_fn implementation.\n"
                                  "See documentation for model_fn at https://github.com/aws/sagemaker-python-sdk")

    def default_input_fn(self, input_data: Any, content_type: str) -> Any:
        raise NotImplementedError("the local cloud does not have the XGBoost container's default input_fn: "
                                  "define input_fn in the inference script")

    def default_predict_fn(self, data: Any, model: Any) -> Any:
        raise NotImplementedError("the local cloud does not have the XGBoost container's default predict_fn: "
                                  "define predict_fn in the inference script")

    def default_output_fn(self, prediction: Any, accept: str) -> Any:
        raise NotImplementedError("the local cloud does not have the XGBoost container's default output_fn: "
                                  "define output_fn in the inference script")


def encoded(value: Any) -> bytes | None:
    """otf_message_handler.create_predict_response: bytes as they are, text as UTF-8, anything else as JSON;
    None when it is none of these (MMS then answers 503)."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    try:
        return json.dumps(value, indent=2).encode("utf-8")
    except TypeError:
        return None


def _injected_fault(*_: Any) -> Any:
    raise RuntimeError("injected fault: the model raises on every request")


def predict(service: Any, context: Context, body: bytes, request: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """mms.service.Service.predict for a batch of one request: the handler's answer, status and content type."""
    headers = {name: value for name, value in (("Content-Type", request["content_type"]),
                                               ("Accept", request["accept"])) if value is not None}
    processor = RequestProcessor({"body": {"content-type": request["content_type"]}, **headers})
    context.request_processor = [processor]
    transformer = service._service
    saved = transformer._transform_fn
    if request.get("fault"):  # the model fails on every request: the toolkit decides what the client sees
        transformer._transform_fn = _injected_fault
    try:
        answer = service.handle([{"body": body}], context)
    except MemoryError:
        return {"status": 507, "phrase": "Out of resources"}, b"error"
    except Exception:
        traceback.print_exc()
        return {"status": 503, "phrase": "Prediction failed"}, b"error"
    finally:
        transformer._transform_fn = saved
    payload = encoded(answer[0]) if isinstance(answer, list) and len(answer) == 1 else None
    if payload is None:
        return {"status": 503, "phrase": "Invalid model predict output"}, b"error"
    return {"status": processor.status_code, "phrase": processor.reason_phrase,
            "content_type": processor.response_header.get("content-type")}, payload


def warm() -> None:
    for name in _WARM:
        with contextlib.suppress(ImportError):  # a warm-up only: the model's own import says what is missing
            __import__(name)


def become(container: dict[str, Any]) -> None:
    """Take the assigned container's environment, log, working directory and code."""
    log = os.open(container["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(log, 1)  # the user code's prints and errors go to the container's log, never into the answers
    os.dup2(log, 2)
    os.environ.clear()
    os.environ.update(container["env"])
    os.chdir(container["code_dir"])
    sys.path.insert(0, container["code_dir"])


def main() -> int:
    requests, answers = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # nothing printed while warming can reach the answers
    warm()
    assigned = read_frame(requests)
    if assigned is None:  # never needed: the service shut down
        return 0
    container = json.loads(assigned)
    become(container)
    service = DefaultHandlerService(transformer=Transformer(default_inference_handler=XGBoostUserModuleDefaults()))
    context = Context(container["model_dir"])
    try:
        service.initialize(context)  # MMS loads the model at start-up: model_fn, or the container never gets healthy
    except Exception:
        traceback.print_exc()
        write_frame(answers, json.dumps({"ready": False}).encode())
        return 1
    write_frame(answers, json.dumps({"ready": True}).encode())
    while (header := read_frame(requests)) is not None:
        body = read_frame(requests) or b""
        answer, payload = predict(service, context, body, json.loads(header))
        write_frame(answers, json.dumps(answer).encode())
        write_frame(answers, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
