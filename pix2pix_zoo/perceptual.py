"""LPIPS, the learned perceptual distance of Zhang et al. (2018), computed as the ``lpips`` package's
``LPIPS(net='alex', version='0.1')`` computes it, from weights on disk: nothing is downloaded.

The distance of two [-1, 1] images: each is shifted and scaled per channel (the "scaling layer"),
run through torchvision's AlexNet ``features`` up to relu1 ... relu5 (64, 192, 384, 256 and 256
channels); each layer's features are divided by their norm over the channels (plus 1e-10), the
squared difference is weighed per channel by that layer's linear head (a 1x1 convolution without
bias) and averaged over the pixels, and the five layers' figures are summed. Lower is closer; the
figure depends on the weights, so compare it only with figures from the same ones.

Where the weights come from (:func:`load_lpips`):

* a file (``--lpips-weights FILE``, safetensors or a weights-only ``.pth``) with the linear heads
  and, optionally, AlexNet's features, in any of the layouts in use: the heads file the ``lpips``
  package ships (``lin0.model.1.weight`` ... ``lin4.model.1.weight``, its
  ``lpips/weights/v0.1/alex.pth``), a whole ``lpips.LPIPS`` state dict (``net.slice1.0.weight`` ...,
  ``lin0.model.1.weight`` ... or ``lins.0.model.1.weight`` ..., ``scaling_layer.shift`` and
  ``.scale``), torchvision's AlexNet keys (``features.0.weight`` ...; ``classifier.*`` is ignored),
  or a mix. Where the file has no features, they come from torchvision's cache of its ImageNet
  AlexNet (``torch.hub.get_dir()/checkpoints/alexnet-owt-7be5be79.pth``, which ``lpips`` itself
  uses); where neither has them, or the file has no heads, it is an error;
* no file: torchvision's cached AlexNet and the heads shipped inside an installed ``lpips`` package
  (found, not imported); where either is missing, there is no LPIPS (None) and the caller says so.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import torch
from torch import Tensor, nn

from pix2pix_zoo.errors import ZooError
from pix2pix_zoo.weights import misfit, read_state_dict_pth, read_weights

ALEXNET_CACHE_FILE = "alexnet-owt-7be5be79.pth"  # torchvision's ImageNet AlexNet, as torch.hub caches it
LPIPS_HEADS_FILE = ("weights", "v0.1", "alex.pth")  # inside the lpips package
LAYER_ENDS = (2, 5, 8, 10, 12)  # AlexNet's ``features`` cut after relu1 ... relu5
CHANNELS = (64, 192, 384, 256, 256)
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
MIN_SIZE = 31  # the smallest side AlexNet's two 3x3 max pools (after the stride-4 conv) accept

# A tensor name of each layout -> ours (``features.*``, ``heads.K.weight``, ``shift``, ``scale``).
_RENAMES = (
    (re.compile(r"features\.(\d+)\.(weight|bias)"), r"features.\1.\2"),  # torchvision
    (re.compile(r"net\.slice[1-5]\.(\d+)\.(weight|bias)"), r"features.\1.\2"),  # lpips.LPIPS
    (re.compile(r"(?:lin|lins\.)([0-4])\.model\.[01]\.weight"), r"heads.\1.weight"),  # lin0... and lins.0...
    (re.compile(r"scaling_layer\.(shift|scale)"), r"\1"),
)
_IGNORED = re.compile(r"classifier\..*")  # torchvision AlexNet's classifier


class LPIPS(nn.Module):
    """LPIPS v0.1 on AlexNet; ``network(a, b)`` is the distance of each pair of [-1, 1] images
    (1 or 3 channels, sides of at least ``MIN_SIZE``), shape [N]. Build it with :func:`load_lpips`."""

    def __init__(self) -> None:
        from torchvision.models import alexnet

        super().__init__()
        with torch.device("meta"):  # shapes only: every tensor is loaded (load_lpips)
            self.features = alexnet(weights=None).features[: LAYER_ENDS[-1]]
            self.heads = nn.ModuleList(nn.Conv2d(channels, 1, 1, bias=False) for channels in CHANNELS)
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        if a.shape[1] not in (1, 3):
            raise ZooError(f"LPIPS needs 1- or 3-channel images, not {a.shape[1]} channels")
        if min(a.shape[2:]) < MIN_SIZE:
            raise ZooError(f"LPIPS needs images of at least {MIN_SIZE} x {MIN_SIZE} pixels, not "
                           f"{a.shape[3]} x {a.shape[2]}")
        both = torch.cat([a, b]).float().expand(-1, 3, -1, -1)
        h = (both - self.shift) / self.scale
        total = 0
        start = 0
        for end, head in zip(LAYER_ENDS, self.heads):
            h = self.features[start:end](h)
            start = end
            unit = h / (h.square().sum(1, keepdim=True).sqrt() + 1e-10)
            first, second = unit.chunk(2)
            total = total + head((first - second).square()).mean((2, 3), keepdim=True)
        return total.flatten()


def load_lpips(path: Path | None, device: torch.device) -> LPIPS | None:
    """LPIPS with the weights in ``path``, or else in torchvision's cache and the ``lpips`` package
    (see the module's docstring); None when ``path`` is None and either of those is missing. A file
    that does not fit is one ZooError naming it."""
    cached = Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_CACHE_FILE
    names: dict[str, str] = {}  # ours -> as the weights name it, for errors
    if path is None:
        heads = _shipped_heads()
        if heads is None or not cached.is_file():
            return None
        state = {**_ours(read_state_dict_pth(cached), cached, names), **_ours(read_state_dict_pth(heads), heads, names)}
        return _built(state, f"{cached} with {heads}", names).to(device)
    if not path.is_file():
        raise ZooError(f"no LPIPS weights at {str(path)!r}" + (": it is a folder, not a file" if path.is_dir() else ""))
    state = _ours(read_weights(path), path, names)
    if not any(key.startswith("heads.") for key in state):
        raise ZooError(f"{path} holds no LPIPS linear heads (lin0.model.1.weight ... lin4.model.1.weight)")
    if not any(key.startswith("features.") for key in state):
        if not cached.is_file():
            raise ZooError(
                f"{path} holds the LPIPS heads but not AlexNet's weights, and torchvision's cache has no "
                f"{cached}: add features.* to the file, or put torchvision's AlexNet there"
            )
        state = {**_ours(read_state_dict_pth(cached), cached, names), **state}
    return _built(state, str(path), names).to(device)


def _shipped_heads() -> Path | None:
    """The heads file inside an installed ``lpips`` package, found without importing it."""
    try:
        spec = importlib.util.find_spec("lpips")
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        heads = Path(folder).joinpath(*LPIPS_HEADS_FILE)
        if heads.is_file():
            return heads
    return None


def _ours(state: dict[str, Tensor], path: Path, names: dict[str, str]) -> dict[str, Tensor]:
    """``state`` under our names, noting in ``names`` what each was called; a name that is none of the
    layouts' stays as it is (and misfits). A name given twice (``lin0`` and ``lins.0`` of an
    lpips.LPIPS) must hold the same tensor."""
    renamed: dict[str, Tensor] = {}
    for key, value in state.items():
        if _IGNORED.fullmatch(key):
            continue
        ours = next((pattern.sub(name, key) for pattern, name in _RENAMES if pattern.fullmatch(key)), key)
        if ours in renamed and not (renamed[ours].shape == value.shape and torch.equal(renamed[ours], value)):
            raise ZooError(f"{path}: {key!r} and another name of {ours!r} hold different tensors")
        renamed[ours] = value
        names.setdefault(ours, key)
    return renamed


def _built(state: dict[str, Tensor], where: str, names: dict[str, str]) -> LPIPS:
    """The network with exactly ``state`` (the scaling layer's constants where it has none);
    ``where`` names the weights in errors, ``names`` their tensors (else the lpips package's name)."""
    network = LPIPS()
    state = {"shift": network.shift, "scale": network.scale, **state}
    expected = {key: tuple(value.shape) for key, value in network.state_dict().items()}

    def shown(key: str) -> str:
        return names.get(key) or re.sub(r"heads\.(\d)\.weight", r"lin\1.model.1.weight", key)

    problem = misfit({shown(key): shape for key, shape in expected.items()},
                     {shown(key): tuple(value.shape) for key, value in state.items()})
    if problem:
        raise ZooError(f"{where}: the weights do not fit LPIPS on AlexNet: {problem}")
    network.load_state_dict({key: value.float() for key, value in state.items()}, strict=True, assign=True)
    return network.eval().requires_grad_(False)
