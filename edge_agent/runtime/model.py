"""A loaded, verified model: floats in, floats out, whichever interpreter runs it."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from edge_agent.bundle import MODEL_FILE, Bundle, read_bundle
from edge_agent.errors import BundleError, RuntimeBackendError
from edge_agent.manifest import InputSpec, Manifest, TensorSpec
from edge_agent.runtime.backends import BackendChoice, load_edgetpu_delegate, resolve_interpreter
from edge_agent.runtime.quantization import TensorCodec, spec_mismatches, tensor_spec
from edge_agent.signing import TrustedKeys

log = logging.getLogger("edge_agent.runtime")
# Examples per invoke(): enough to make the per-call overhead (set_tensor, invoke, get_tensor:
# ~15 us) a small share of each example, few enough that a batch's float64 features (BATCH_BYTES)
# stay in the CPU cache and below the size where every temporary array is a fresh mapping from
# the OS (page faults on each batch tripled the per-window cost of a 256-window batch).
MAX_BATCH = 256
BATCH_BYTES = 256 * 1024


class ModelRunner:
    """One interpreter for one bundle, checked against its manifest when it is built."""

    def __init__(
        self,
        bundle: Bundle,
        backend: BackendChoice = "auto",
        num_threads: int = 1,
        edgetpu: bool = False,
        edgetpu_fallback: bool = False,
    ) -> None:
        self.bundle = bundle
        self.backend, interpreter_class = resolve_interpreter(backend)
        self.delegate: str | None = None
        delegates = []
        if edgetpu:
            try:
                delegates.append(load_edgetpu_delegate(self.backend))
                self.delegate = "edgetpu"
            except RuntimeBackendError as exc:
                if not edgetpu_fallback:
                    raise
                log.warning("Edge TPU unavailable, running on CPU", extra={"error": str(exc)})
        model_path = bundle.path / MODEL_FILE
        try:
            self._interpreter = interpreter_class(
                model_content=bundle.model,
                num_threads=num_threads,
                experimental_delegates=delegates or None,
            )
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise BundleError(
                f"{model_path}: {self.backend} cannot load the model ({exc})"
            ) from None
        inputs = self._interpreter.get_input_details()
        outputs = self._interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise BundleError(
                f"{model_path}: expected one input and one output tensor, "
                f"found {len(inputs)} and {len(outputs)}"
            )
        self.input_spec = tensor_spec(inputs[0])
        self.output_spec = tensor_spec(outputs[0])
        problems = [
            f"{name} tensor {problem}"
            for name, expected, actual in (
                ("input", bundle.manifest.tensors.input, self.input_spec),
                ("output", bundle.manifest.tensors.output, self.output_spec),
            )
            for problem in spec_mismatches(expected, actual)
        ]
        if problems:
            raise BundleError(
                f"{model_path}: manifest disagrees with model: " + "; ".join(problems)
            )
        problem = input_shape_problem(bundle.manifest, self.input_spec, self.output_spec)
        if problem is not None:  # before any window: predict() would fail on every one
            raise BundleError(f"{bundle.path}: {problem}")
        self._input_index = inputs[0]["index"]
        self._output_index = outputs[0]["index"]
        self._input_shape = tuple(self.input_spec.shape)
        self._batch = 1  # the batch size the interpreter's tensors are allocated for now
        # Several examples per invoke() when the model's batch axis is free (-1 in the shape
        # signature) and no delegate runs it (the Edge TPU's graphs have fixed shapes).
        signature = list(inputs[0].get("shape_signature", []))
        self.batchable = self.delegate is None and len(signature) > 1 and signature[0] == -1
        per_example = int(np.prod(self._input_shape[1:])) * 8
        self.batch_size = max(1, min(MAX_BATCH, BATCH_BYTES // per_example))
        self._encode = TensorCodec(self.input_spec).encode
        self._decode = TensorCodec(self.output_spec).decode
        self.golden_error: float | None = None  # set by smoke_test()

    @property
    def manifest(self) -> Manifest:
        return self.bundle.manifest

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Run one example (model input without the batch axis) and return the float output row."""
        batch = np.asarray(features, dtype=np.float32).reshape(self._input_shape)
        return self._invoke(batch)[0]

    def predict_many(self, features: np.ndarray) -> np.ndarray:
        """Run examples stacked on a leading axis; returns their float output rows stacked.

        Up to `batch_size` examples go through one invoke() when the model allows it, quantised
        and dequantised as one array; the int8 kernels compute each example on its own, so every
        row equals what predict() gives for it (tested for the reference bundles)."""
        examples = np.asarray(features, dtype=np.float32)
        n = len(examples)
        if not self.batchable or n == 1:
            return np.stack([self.predict(row) for row in examples])
        rows = examples.reshape(n, *self._input_shape[1:])
        size = self.batch_size
        outputs = [self._invoke(rows[a : a + size]) for a in range(0, n, size)]
        return np.concatenate(outputs).reshape(n, *outputs[0].shape[1:])

    def _invoke(self, batch: np.ndarray) -> np.ndarray:
        """One invoke() on a float batch shaped like the input tensor but for its first axis;
        the tensors are reallocated only when that batch size changes (~40 us)."""
        interpreter = self._interpreter
        if len(batch) != self._batch:
            interpreter.resize_tensor_input(self._input_index, [len(batch), *self._input_shape[1:]])
            interpreter.allocate_tensors()
            self._batch = len(batch)
        interpreter.set_tensor(self._input_index, self._encode(batch))
        interpreter.invoke()
        return self._decode(interpreter.get_tensor(self._output_index))

    def smoke_test(self) -> float:
        """Run the manifest's golden example; raise if the output drifted. Returns the max error."""
        golden = self.manifest.golden
        got = self.predict(np.asarray(golden.input, dtype=np.float32))
        error = float(np.max(np.abs(got - np.asarray(golden.output, dtype=np.float32))))
        atol = golden.atol_for(self.backend)
        if not error <= atol:
            which = "atol"
            if self.backend in (golden.atol_by_backend or {}):
                which = f"atol_by_backend.{self.backend}"
            raise BundleError(
                f"{self.bundle.path}: golden smoke test failed on {self.backend}: "
                f"max error {error:.6g} > {which} {atol:.6g}"
            )
        self.golden_error = error
        return error


def feature_shape_problem(spec: InputSpec, model_input: TensorSpec) -> str | None:
    """Why the front end cannot feed this model input tensor, as one sentence, or None.

    The steps are run on a (window, channels) array of zeros; the shape they give must equal
    the tensor's shape, a leading batch axis of 1 aside."""
    window = (spec.window, len(spec.channels))
    try:
        with np.errstate(all="ignore"):
            shape = spec.pipeline().output_shape(*window)
    except ValueError as exc:
        return f"the feature pipeline fails on a {window} window ({exc})"
    tensor = tuple(model_input.shape)
    per_example = tensor[1:] if len(tensor) > 1 and tensor[0] == 1 else tensor
    if shape not in (tensor, per_example):
        return (
            f"the feature pipeline turns a {window} window into shape {shape} "
            f"but the model's input tensor has shape {list(tensor)}"
        )
    return None


def input_shape_problem(
    manifest: Manifest, model_input: TensorSpec, model_output: TensorSpec
) -> str | None:
    """Why this manifest cannot drive this model, as one sentence, or None: the front end's
    output shape (feature_shape_problem), the golden input's size, and an autoencoder's output,
    which needs one value per input value (reconstruction_mse)."""
    problem = feature_shape_problem(manifest.input, model_input)
    if problem is not None:
        return problem
    n_input = int(np.prod(model_input.shape))
    n_golden = sum(len(row) if isinstance(row, list) else 1 for row in manifest.golden.input)
    if n_golden != n_input:
        return (
            f"the golden input has {n_golden} values but the model's input tensor "
            f"{model_input.shape} takes {n_input}"
        )
    if manifest.task == "anomaly" and int(np.prod(model_output.shape)) != n_input:
        return (
            f"an anomaly model's output must reconstruct its input, but the output tensor has "
            f"shape {model_output.shape} and the input {model_input.shape}"
        )
    return None


def load_model(
    path: str | Path,
    backend: BackendChoice = "auto",
    num_threads: int = 1,
    edgetpu: bool = False,
    edgetpu_fallback: bool = False,
    trusted: TrustedKeys | None = None,
) -> ModelRunner:
    """Read, verify (signature too, given trusted keys), load and smoke-test a bundle."""
    bundle = read_bundle(path, trusted)  # every check that needs no interpreter comes first
    runner = ModelRunner(bundle, backend, num_threads, edgetpu, edgetpu_fallback)
    runner.smoke_test()
    return runner
