"""The user code the serving tests serve: a script-mode inference module and where it is packed."""

# A user module whose answer is chosen by the request's text, to drive each of the toolkit's rules.
MODULE = '''
import time
from sagemaker_inference import errors
from helper import GREETING  # a sibling module, installed with the code


def model_fn(model_dir):
    return {"dir": model_dir}


def input_fn(body, content_type):
    return {"type": type(body).__name__, "text": body if isinstance(body, str) else body.decode("utf-8", "replace")}


def predict_fn(data, model):
    return data


def output_fn(data, accept):
    text = data["text"]
    if text == "client":
        raise errors.GenericInferenceToolkitError(400, "this row is malformed")
    if text == "bug":
        raise ValueError("a bug in the model's own code")
    if text == "unsupported":
        raise errors.UnsupportedFormatError("text/plain")
    if text == "tuple":
        return "1,2\\n", "text/csv"
    if text == "object":
        return {"answer": 42}
    if text == "accept":
        return f"accept was {accept}"
    if text == "type":
        return data["type"]
    if text == "slow":
        time.sleep(30)
    return GREETING
'''
CODE = {"inference.py": MODULE, "helper.py": "GREETING = 'fine'\n"}
IN_MODEL = {f"code/{name}": text for name, text in CODE.items()} | {"model.json": "{}"}
ISOLATED_ENV = {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"}
