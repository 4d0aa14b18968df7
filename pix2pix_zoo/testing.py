"""Conformance checks for plugin authors: does a component keep the contracts the engine relies on?

Call them from your own tests (pytest or any other runner)::

    from pix2pix_zoo.testing import check_dataset, check_plugin

    def test_conformance():
        assert "my_net" in check_plugin(my_plugin)

    def test_my_dataset(tmp_path):
        check_dataset(my_plugin.my_dataset(tmp_path, "train"))

Each check raises AssertionError naming the component and what is wrong, and returns None when all
is well (:func:`check_component` and :func:`check_plugin` return what they checked). The checks run
real forward and backward passes on the module's device, so build networks small: registry
components are built with :data:`TINY_OPTIONS` (``ngf``/``ndf`` of 4, everything else default).
Modules are put back in the train/eval mode they came in and their ``.grad`` is left untouched
(batch-norm running statistics do see the checks' random inputs).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pix2pix_zoo.components import Component, Registry
from pix2pix_zoo.interfaces import DatasetInfo, GeneratorLoss, ImageCodec, Objective, PairedDataset
from pix2pix_zoo.plugins import PluginHost, get_registry

__all__ = [
    "TINY_OPTIONS",
    "check_codec",
    "check_component",
    "check_dataset",
    "check_discriminator",
    "check_exportable",
    "check_generator",
    "check_objective",
    "check_plugin",
    "check_training",
    "measure_receptive_field",
]

TINY_OPTIONS: dict[str, Any] = {"ngf": 4, "ndf": 4}
"""Options :func:`check_component` sets when the factory has them, to build networks cheaply."""

CHECKED_KINDS = ("generator", "discriminator", "objective", "codec")
"""The kinds :func:`check_component` can check without data (a dataset needs files to open)."""

# A batch of one at the coarsest level of a 32x-reducing encoder is a 1x1 map, which batch norm
# cannot train on; 64 gives every level at least 2x2 values, as real (256x256) training does.
_MIN_GENERATOR_SIZE = 64
# Margin around a declared receptive field, so that a field a little larger than declared is
# measured whole rather than cut off by the input's border.
_FIELD_MARGIN = 32


def _require(condition: bool, label: str, problem: str) -> None:
    # Explicit raises rather than assert statements: the checks must also work under python -O.
    if not condition:
        raise AssertionError(f"{label}: {problem}")


def _label(kind: str, component: object, name: str | None) -> str:
    return f"{kind} {name or type(component).__name__!r}"


def _device(module: nn.Module) -> torch.device:
    tensor = next(iter([*module.parameters(), *module.buffers()]), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def _uniform(*shape: int, device: torch.device, seed: int = 0) -> Tensor:
    """Values in [-1, 1] from a private generator (the caller's global RNG stays as it was)."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=generator) * 2 - 1).to(device)


def _shape(tensor: Any) -> str:
    return str(tuple(tensor.shape)) if isinstance(tensor, Tensor) else type(tensor).__name__


def _gradients(loss: Tensor, inputs: list[Tensor]) -> list[Tensor | None]:
    """d loss / d input for each input, None where it does not depend on it (``.grad`` untouched)."""
    if not inputs or not loss.requires_grad:  # a detached loss depends on nothing
        return [None] * len(inputs)
    return list(torch.autograd.grad(loss, inputs, allow_unused=True, retain_graph=True))


def _check_gradients(label: str, module: nn.Module, loss: Tensor) -> None:
    """Every trainable parameter of ``module`` gets a finite gradient from ``loss``."""
    named = [(name, p) for name, p in module.named_parameters() if p.requires_grad]
    grads = _gradients(loss, [p for _, p in named])
    missing = [name for (name, _), grad in zip(named, grads) if grad is None]
    _require(not missing, label, f"no gradient reaches the trainable parameters {', '.join(missing)}")
    infinite = [name for (name, _), grad in zip(named, grads) if not torch.isfinite(grad).all()]
    _require(not infinite, label, f"non-finite gradients for the parameters {', '.join(infinite)}")


def _forward(label: str, module: nn.Module, image: Tensor, what: str) -> Any:
    """``module(image)``; an error inside it fails the check with the component's name."""
    try:
        return module(image)
    except Exception as error:
        raise AssertionError(f"{label}: fails {what}: {type(error).__name__}: {error}") from error


def _positive_int(label: str, module: object, attribute: str) -> int:
    value = getattr(module, attribute, None)
    _require(
        isinstance(value, int) and not isinstance(value, bool) and value > 0,
        label,
        f"{attribute} must be a positive int, not {value!r}",
    )
    return value


def check_generator(
    generator: nn.Module,
    in_channels: int,
    out_channels: int,
    *,
    size: int | None = None,
    batch: int = 2,
    name: str | None = None,
) -> None:
    """Check a generator: ``size_multiple``, output shape and range, train/eval behaviour, gradients.

    ``size`` must be a multiple of ``size_multiple``; by default the smallest one of at least 64.
    The output must have the input's size at ``size`` x ``size`` and at ``size`` x ``size +
    size_multiple``, lie in [-1, 1] and be finite; a batch of one must run in train mode; two eval
    passes must agree; an L1 loss on the output must give every trainable parameter a finite gradient.
    """
    label = _label("generator", generator, name)
    _require(isinstance(generator, nn.Module), label, "is not a torch.nn.Module")
    multiple = _positive_int(label, generator, "size_multiple")
    if size is None:
        size = -(-_MIN_GENERATOR_SIZE // multiple) * multiple
    if size % multiple:
        raise ValueError(f"{label}: size {size} is not a multiple of its size_multiple {multiple}")
    device, was_training = _device(generator), generator.training

    def run(image: Tensor, mode: str) -> Tensor:
        what = f"for a {_shape(image)} input in {mode} mode"
        out = _forward(label, generator, image, what)
        expected = (image.shape[0], out_channels, *image.shape[2:])
        _require(isinstance(out, Tensor) and tuple(out.shape) == expected, label,
                 f"output is {_shape(out)} {what}; expected {expected}")
        _require(bool(torch.isfinite(out).all()), label, f"output is not finite {what}")
        low, high = out.min().item(), out.max().item()
        _require(-1 <= low and high <= 1, label, f"output spans [{low:.4g}, {high:.4g}] {what}, not within [-1, 1]")
        return out

    try:
        generator.train()
        out = run(_uniform(batch, in_channels, size, size, device=device), "train")
        target = _uniform(*out.shape, device=device, seed=1)
        _check_gradients(label, generator, F.l1_loss(out, target))
        with torch.no_grad():
            run(_uniform(1, in_channels, size, size, device=device), "train")
            generator.eval()
            wide = _uniform(batch, in_channels, size, size + multiple, device=device)
            _require(torch.equal(run(wide, "eval"), run(wide, "eval")), label,
                     "two eval-mode passes over the same input differ")
    finally:
        generator.train(was_training)


def check_exportable(
    generator: nn.Module,
    in_channels: int,
    *,
    formats: tuple[str, ...] = ("onnx", "torchscript"),
    size: int | None = None,
    atol: float = 1e-4,
    name: str | None = None,
) -> None:
    """Check that ``zoo export`` can carry a generator out of Python: each of ``formats`` exported in
    eval mode (:mod:`pix2pix_zoo.export`) computes what the generator computes in eval mode, to
    ``atol``, at ``size`` x ``size`` (default: the smallest multiple of ``size_multiple`` of at least
    64) and at ``size`` x ``size + size_multiple``, batches of one and two. The ONNX file runs in
    onnxruntime (the ``onnx`` extra). A generator that cannot be exported fails with the exporter's
    line, which names the operator it has no translation for.
    """
    from pix2pix_zoo.errors import ZooError
    from pix2pix_zoo.export import exported, load_torchscript
    from pix2pix_zoo.onnx_backend import OnnxGenerator
    from pix2pix_zoo.translator_file import Card

    label = _label("generator", generator, name)
    multiple = _positive_int(label, generator, "size_multiple")
    if size is None:
        size = -(-_MIN_GENERATOR_SIZE // multiple) * multiple
    device, was_training = _device(generator), generator.training
    square = _uniform(1, in_channels, size, size, device=torch.device("cpu"))
    wide = _uniform(2, in_channels, size, size + multiple, device=torch.device("cpu"), seed=1)
    try:
        generator.eval()
        with torch.no_grad():  # on the generator's device; the exports run on the CPU
            expected = [generator(image.to(device)).float().cpu() for image in (square, wide)]
        card = Card(spec=name or type(generator).__name__, in_channels=in_channels,
                    out_channels=expected[0].shape[1], size_multiple=multiple, inference_mode="eval")
        for export_format in formats:
            try:
                data, export_card = exported(generator, card, export_format, mode="eval")
            except ZooError as error:
                raise AssertionError(f"{label}: {error}") from None
            run = OnnxGenerator(data, export_card) if export_format == "onnx" else load_torchscript(data)
            for image, want in zip((square, wide), expected):
                with torch.no_grad():
                    got = run(image)
                _require(tuple(got.shape) == tuple(want.shape), label,
                         f"its {export_format} export gives {_shape(got)} for a {_shape(image)} input; expected {_shape(want)}")
                difference = (got.float() - want).abs().max().item()
                _require(difference <= atol, label,
                         f"its {export_format} export differs from eval mode by {difference:.3g} (more than {atol:g}) "
                         f"for a {_shape(image)} input")
    finally:
        generator.train(was_training)


def measure_receptive_field(net: nn.Module, in_channels: int, size: int) -> int:
    """Side of the input square that the centre logit of ``net`` depends on, from its input gradient.

    Measured on a float64 copy in eval mode with every weight made positive (LeakyReLU slopes and
    eval-mode batch-norm scales already are), so every path from an input pixel to the logit adds
    a positive term and no gradient cancels to an accidental zero inside the field; batch norm in
    eval mode keeps locations independent. ``size`` must leave a margin around the field.
    """
    label = f"discriminator {type(net).__name__!r}"
    net = copy.deepcopy(net).double().eval()
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.abs_()
    # Positive inputs too, so that no ReLU-like unit is off at an input pixel inside the field.
    image = torch.rand(1, in_channels, size, size, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    image = image.to(_device(net)).requires_grad_()
    logits = net(image)
    (grad,) = torch.autograd.grad(logits[0, 0, logits.shape[2] // 2, logits.shape[3] // 2], image)
    sensitive = grad.abs().sum((0, 1)) > 0
    rows, cols = sensitive.any(1).nonzero().flatten(), sensitive.any(0).nonzero().flatten()
    inside = rows.min() > 0 and cols.min() > 0 and rows.max() < size - 1 and cols.max() < size - 1
    _require(bool(inside), label, f"the centre logit's receptive field reaches the border of a {size}x{size} "
             "input, so it cannot be measured whole; it is larger than this size allows")
    height, width = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
    _require(height == width, label, f"the measured receptive field is {height}x{width}, not square")
    # A hole would mean a cancellation that the positive weights should rule out.
    _require(int(sensitive.sum()) == height * width, label, "the measured receptive field has holes")
    return height


def check_discriminator(
    discriminator: nn.Module, in_channels: int, *, size: int | None = None, name: str | None = None
) -> None:
    """Check a discriminator: ``(N, 1, h, w)`` logits, gradients, and its declared ``receptive_field``.

    The field is measured with :func:`measure_receptive_field` at ``size`` (by default the declared
    field plus a margin of 32 pixels on each side) and must equal the declared one.
    """
    label = _label("discriminator", discriminator, name)
    _require(isinstance(discriminator, nn.Module), label, "is not a torch.nn.Module")
    field = _positive_int(label, discriminator, "receptive_field")
    size = size or field + 2 * _FIELD_MARGIN
    device, was_training = _device(discriminator), discriminator.training
    try:
        discriminator.train()
        image = _uniform(2, in_channels, size, size, device=device)
        logits = _forward(label, discriminator, image, f"for a {_shape(image)} input in train mode")
        _require(isinstance(logits, Tensor) and logits.ndim == 4 and tuple(logits.shape[:2]) == (2, 1), label,
                 f"logits are {_shape(logits)} for a batch of 2; expected (2, 1, h, w)")
        _require(bool(torch.isfinite(logits).all()), label, "logits are not finite")
        _check_gradients(label, discriminator, logits.mean())
    finally:
        discriminator.train(was_training)
    try:
        measured = measure_receptive_field(discriminator, in_channels, size)
    except AssertionError as error:
        raise AssertionError(f"{label}: declares receptive_field {field}, but {error}") from None
    _require(measured == field, label, f"declares receptive_field {field}, but the measured one is {measured}")


def _scalar(label: str, what: str, value: Any) -> Tensor:
    _require(isinstance(value, Tensor) and value.ndim == 0, label, f"{what} is {_shape(value)}, not a scalar tensor")
    _require(bool(torch.isfinite(value)), label, f"{what} is not finite ({value.item()})")
    return value


def _check_differentiable(label: str, loss: Tensor, inputs: dict[str, Tensor]) -> None:
    for what, grad in zip(inputs, _gradients(loss, list(inputs.values()))):
        _require(grad is not None, label, f"the loss gives no gradient w.r.t. {what}")
        _require(bool(torch.isfinite(grad).all()), label, f"the loss gives a non-finite gradient w.r.t. {what}")


def check_objective(objective: Objective, *, channels: int = 3, name: str | None = None) -> None:
    """Check an objective: finite scalar losses, gradients, and what its discriminator sees.

    The fake's logits come from a stand-in discriminator (pooling) over ``discriminator_input``, so
    the generator's loss must reach the fake through them as well as through its own terms. A
    discriminator that is right (real logits high, fake logits low) must get a lower loss than one
    that is wrong.
    """
    label = _label("objective", objective, name)
    _require(isinstance(objective, Objective), label, "is not a pix2pix_zoo.interfaces.Objective")
    for flag in ("conditional", "uses_discriminator"):
        value = getattr(objective, flag)
        _require(isinstance(value, bool), label, f"{flag} is {value!r}, not a bool")
    x = _uniform(2, channels, 8, 8, device=torch.device("cpu"))
    fake = _uniform(2, channels, 8, 8, device=torch.device("cpu"), seed=1).requires_grad_()
    target = _uniform(2, channels, 8, 8, device=torch.device("cpu"), seed=2)
    fake_logits = None
    if objective.uses_discriminator:
        seen_channels = objective.discriminator_in_channels(channels, channels)
        expected = 2 * channels if objective.conditional else channels
        what = "input and output" if objective.conditional else "the output alone"
        _require(seen_channels == expected, label, f"conditional is {objective.conditional}, so its discriminator "
                 f"sees {what} ({expected} channels), but discriminator_in_channels({channels}, {channels}) "
                 f"is {seen_channels}")
        seen = objective.discriminator_input(x, fake)
        _require(isinstance(seen, Tensor) and tuple(seen.shape) == (2, seen_channels, 8, 8), label,
                 f"discriminator_input is {_shape(seen)}; discriminator_in_channels says (2, {seen_channels}, 8, 8)")
        fake_logits = F.avg_pool2d(seen.mean(1, keepdim=True), 2)
    loss = objective.generator_loss(fake, target, fake_logits)
    _require(isinstance(loss, GeneratorLoss), label,
             f"generator_loss returned {type(loss).__name__}, not a GeneratorLoss")
    _scalar(label, "the generator's loss", loss.total)
    for term, value in loss.terms.items():
        _scalar(label, f"the generator's loss term {term!r}", value)
    inputs = {"the fake": fake} | ({"the fake's logits": fake_logits} if fake_logits is not None else {})
    _check_differentiable(label, loss.total, inputs)
    if not objective.uses_discriminator:
        return
    high, low = (torch.full((2, 1, 4, 4), value, requires_grad=True) for value in (2.0, -2.0))
    right = _scalar(label, "the discriminator's loss", objective.discriminator_loss(high, low))
    _check_differentiable(label, right, {"the real logits": high, "the fake logits": low})
    wrong = _scalar(label, "the discriminator's loss", objective.discriminator_loss(low, high))
    _require(right.item() < wrong.item(), label, f"the discriminator's loss is {right.item():.4g} when it is right "
             f"(real logits high, fake low) and {wrong.item():.4g} when it is wrong; right must be lower")


def _spread(count: int, most: int) -> list[int]:
    """Up to ``most`` indices from first to last, evenly spread."""
    if count <= most:
        return list(range(count))
    return sorted({round(i * (count - 1) / (most - 1)) for i in range(most)})


def check_dataset(dataset: PairedDataset, *, max_items: int = 4, name: str | None = None) -> None:
    """Check a paired dataset's ``info``, length and up to ``max_items`` items (first to last).

    Items must be dicts with ``uint8`` tensors ``a`` and ``b`` of shape ``[C, H, W]`` (C from
    ``info``), A and B of one size, a ``str`` name unique among those checked, and the same item
    every time an index is read.
    """
    info = getattr(dataset, "info", None)
    label = _label("dataset", dataset, name or getattr(info, "name", None))
    _require(isinstance(dataset, PairedDataset), label, "is not a pix2pix_zoo.interfaces.PairedDataset")
    _require(isinstance(info, DatasetInfo), label, f"info is {type(info).__name__}, not a DatasetInfo")
    _require(len(dataset) > 0, label, "is empty")
    names: dict[str, int] = {}
    for index in _spread(len(dataset), max_items):
        item = dataset[index]
        where = f"item {index}"
        _require(isinstance(item, dict) and {"a", "b", "name"} <= item.keys(), label,
                 f"{where} is not a dict with 'a', 'b' and 'name'")
        for side, channels in (("a", info.a_channels), ("b", info.b_channels)):
            image = item[side]
            _require(isinstance(image, Tensor) and image.dtype == torch.uint8 and image.ndim == 3, label,
                     f"{where}: {side!r} is {getattr(image, 'dtype', type(image).__name__)} {_shape(image)}, "
                     "not a uint8 [C, H, W] tensor")
            _require(image.shape[0] == channels, label,
                     f"{where}: {side!r} has {image.shape[0]} channels; info.{side}_channels is {channels}")
        _require(item["a"].shape[1:] == item["b"].shape[1:], label,
                 f"{where}: A is {tuple(item['a'].shape[1:])} and B {tuple(item['b'].shape[1:])}: "
                 "the pair is not aligned (sizes differ)")
        _require(isinstance(item["name"], str), label, f"{where}: name is {item['name']!r}, not a str")
        _require(item["name"] not in names, label,
                 f"items {names.get(item['name'])} and {index} share the name {item['name']!r}")
        names[item["name"]] = index
        again = dataset[index]
        same = again["name"] == item["name"] and all(torch.equal(again[side], item[side]) for side in ("a", "b"))
        _require(same, label, f"reading {where} twice gives two different pairs (not deterministic)")


def check_codec(codec: ImageCodec, in_channels: int, out_channels: int, *, size: int = 24, name: str | None = None) -> None:
    """Check an image codec between RGB pictures and a generator with ``in_channels -> out_channels``.

    ``encode`` turns RGB in [0, 1] into ``in_channels`` in [-1, 1]; ``render`` turns an input alone,
    and an input with an output, into finite RGB in [0, 1] of the same size; both leave their
    arguments alone and give the same result twice.
    """
    label = _label("codec", codec, name)
    _require(isinstance(codec, ImageCodec), label, f"is a {type(codec).__name__}, not an ImageCodec")
    rgb = (_uniform(2, 3, size, size + 8, device=torch.device("cpu")) + 1) / 2
    kept = rgb.clone()
    x = codec.encode(rgb)
    _require(torch.equal(rgb, kept), label, "encode changed the pictures it was given")
    _require(isinstance(x, Tensor) and tuple(x.shape) == (2, in_channels, size, size + 8), label,
             f"encode gave {_shape(x)} for RGB pictures {tuple(rgb.shape)}; expected {(2, in_channels, size, size + 8)}")
    _require(bool(torch.isfinite(x).all()) and float(x.abs().max()) <= 1 + 1e-5, label, "encode left [-1, 1]")
    _require(torch.equal(x, codec.encode(rgb)), label, "encode gave different results for the same pictures")
    y = _uniform(2, out_channels, size, size + 8, device=torch.device("cpu"), seed=1)
    for what, pictures in (("render(x)", lambda: codec.render(x)), ("render(x, y)", lambda: codec.render(x, y))):
        inputs = (x.clone(), y.clone())
        shown = pictures()
        _require(torch.equal(x, inputs[0]) and torch.equal(y, inputs[1]), label, f"{what} changed its arguments")
        _require(isinstance(shown, Tensor) and tuple(shown.shape) == (2, 3, size, size + 8), label,
                 f"{what} gave {_shape(shown)}; expected RGB {(2, 3, size, size + 8)}")
        _require(bool(torch.isfinite(shown).all()) and float(shown.min()) >= 0 and float(shown.max()) <= 1, label,
                 f"{what} left [0, 1]")
        _require(torch.equal(shown, pictures()), label, f"{what} gave different results for the same tensors")


def _codec_channels(component: Component, registry) -> tuple[int, int] | None:
    """(A, B) channels of a dataset that names this codec in its info, if one is registered."""
    for dataset in registry.components("dataset"):
        info = getattr(dataset.factory, "info", None)
        if isinstance(info, DatasetInfo) and info.codec in (component.name, *component.aliases):
            return info.a_channels, info.b_channels
    return None


def check_component(
    component: Component | str, *, in_channels: int | None = None, out_channels: int | None = None,
    registry: Registry | None = None, **options: Any
) -> str:
    """Build a registered generator, discriminator, objective or codec small and run its check; return its name.

    ``component`` is a registry :class:`~pix2pix_zoo.components.Component` or a name looked up in
    ``registry`` (default :func:`pix2pix_zoo.plugins.get_registry`). It is built with
    :data:`TINY_OPTIONS` the factory has, overridden by ``options``; a discriminator gets
    ``in_channels`` channels. Channels default to 3, except a codec's: those of a registered
    dataset that names it (colourisation's codec sees 1 channel in and 2 out), else 3 and 3.
    """
    registry = registry if registry is not None else get_registry()
    if isinstance(component, str):
        component = registry.get(component)
    if component.kind not in CHECKED_KINDS:
        raise ValueError(f"{component.kind} {component.name!r}: check_component checks {', '.join(CHECKED_KINDS)}")
    default_in, default_out = (_codec_channels(component, registry) if component.kind == "codec" else None) or (3, 3)
    in_channels = default_in if in_channels is None else in_channels
    out_channels = default_out if out_channels is None else out_channels
    names = {option.name for option in component.options}
    options = {key: value for key, value in TINY_OPTIONS.items() if key in names} | options
    if component.kind == "generator":
        generator = component.build(in_channels, out_channels, **options)
        check_generator(generator, in_channels, out_channels, name=component.name)
    elif component.kind == "discriminator":
        check_discriminator(component.build(in_channels, **options), in_channels, name=component.name)
    elif component.kind == "codec":
        check_codec(component.build(**options), in_channels, out_channels, name=component.name)
    else:
        check_objective(component.build(**options), name=component.name)
    return component.name


def check_plugin(plugin: object, name: str | None = None) -> list[str]:
    """Register ``plugin`` in a fresh plugin host and check every generator, discriminator, objective and codec.

    ``plugin`` is a module or any object with ``@hookimpl`` functions; the process-wide host is left
    alone. Returns the names of everything the plugin registered, of every kind, in registry order
    (datasets are listed but not checked here: call :func:`check_dataset` on a dataset you open; a
    codec is checked with the channels of the plugin's dataset that names it). A hook that raises
    fails the check.
    """
    host = PluginHost()
    name = host.register(plugin, name)
    components = host.registry.components()
    record = host.records[name]
    _require(record.error is None, f"plugin {name!r}", f"a registration hook raised {record.error}")
    for component in components:
        if component.kind in CHECKED_KINDS:
            check_component(component, registry=host.registry)
    return [component.name for component in components]


def check_training(
    spec: str, data: str, run_dir: Path, *, batch_size: int = 2, crop_size: int | None = None, **settings: Any
) -> dict[str, Any] | None:
    """Train ``spec`` on ``data`` (``NAME`` or ``NAME:PATH``) for one step and end the run as ``zoo
    train`` does (export, evaluation, report) in ``run_dir``; return the evaluation, None for a
    dataset without a held-out split.

    What only the engine finds shows up here: pairs that cannot share a batch of ``batch_size``, a
    held-out split that does not open, a generator the translator cannot rebuild. ``crop_size``
    defaults to the generator's size multiple, at least 32; ``settings`` are further
    :class:`~pix2pix_zoo.engine.config.TrainConfig` fields (``data_options``, ``preprocess``, ...).
    Build networks small in ``spec`` (``unet_128(ngf=4)``). Failures are AssertionErrors.
    """
    from pix2pix_zoo.engine.config import TrainConfig
    from pix2pix_zoo.engine.trainer import Trainer
    from pix2pix_zoo.errors import ZooError
    from pix2pix_zoo.spec import resolve
    from pix2pix_zoo.translator import Translator

    run_dir = Path(run_dir)
    label = f"training {spec!r} on {data!r}"
    try:
        if crop_size is None:
            with torch.device("meta"):
                multiple = resolve(spec).build_generator().size_multiple
            crop_size = multiple * max(1, -(-32 // multiple))
        config = TrainConfig(**{"spec": spec, "data": data, "batch_size": batch_size, "crop_size": crop_size,
                                "load_size": crop_size + crop_size // 8, "max_steps": 1, "workers": 0,
                                "device": "cpu", **settings})
        trainer = Trainer(config.validate(), run_dir, progress=False, echo=lambda line: None)
        result = trainer.fit()
        Translator.from_pretrained(run_dir / "translator", device="cpu")
    except ZooError as error:
        raise AssertionError(f"{label}: {error}") from None
    _require(result.step == 1, label, f"stopped at step {result.step}, not 1")
    has_held_out = trainer.held_out_split is not None
    _require((run_dir / "eval.json").is_file() == has_held_out, label,
             "wrote no eval.json though the dataset has a held-out split" if has_held_out else "wrote an eval.json")
    return result.evaluation
