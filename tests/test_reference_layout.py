"""Our networks against the measured state_dict layouts of the reference PyTorch pix2pix code.

``data/reference/*.tsv`` list, in order, every state_dict entry (key, shape, dtype) of the reference
networks (junyanz/pytorch-CycleGAN-and-pix2pix at 2a7afba). Matching them exactly is what lets the
published weights load with a plain ``load_state_dict``.
"""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from pix2pix_zoo_nets import patchgan, resnet, unet

REFERENCE_DIR = Path(__file__).parent / "data" / "reference"

Layout = list[tuple[str, tuple[int, ...], str]]


def read_layout(name: str) -> Layout:
    """Parse a reference tsv: ``key<TAB>(shape)<TAB>dtype`` lines; ``#`` lines are comments."""
    layout = []
    for line in (REFERENCE_DIR / f"{name}.tsv").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, shape, dtype = line.split("\t")
        layout.append((key, tuple(int(d) for d in shape.strip("()").split(",") if d.strip()), dtype))
    return layout


def layout_of(module: torch.nn.Module) -> Layout:
    return [
        (key, tuple(value.shape), str(value.dtype).removeprefix("torch."))
        for key, value in module.state_dict().items()
    ]


# (tsv, factory, positional args, options, state_dict entries and parameters from the README)
REFERENCE_NETWORKS = [
    ("unet_256_batch", unet.unet_256, (3, 3), {"norm": "batch"}, 82, 54_413_955),
    ("unet_128_batch", unet.unet_128, (3, 3), {"norm": "batch"}, 70, 41_828_995),
    ("unet_256_instance", unet.unet_256, (3, 3), {"norm": "instance"}, 32, 54_409_603),
    ("resnet_9blocks_instance", resnet.resnet_9blocks, (3, 3), {"norm": "instance"}, 48, 11_378_179),
    ("patch70_batch_in6", patchgan.patch70, (6,), {"norm": "batch"}, 22, 2_768_705),
    ("pixel_batch_in6", patchgan.pixel, (6,), {"norm": "batch"}, 9, 9_024),
]


@pytest.mark.parametrize(
    ("tsv", "factory", "args", "options", "entries", "parameters"),
    REFERENCE_NETWORKS,
    ids=[case[0] for case in REFERENCE_NETWORKS],
)
def test_state_dict_layout_matches_reference(tsv, factory, args, options, entries, parameters):
    with torch.device("meta"):
        net = factory(*args, **options)
    reference = read_layout(tsv)
    assert len(reference) == entries
    assert layout_of(net) == reference
    assert sum(p.numel() for p in net.parameters()) == parameters


def random_reference_weights(layout: Layout) -> dict[str, torch.Tensor]:
    """A state dict in the reference layout as published files have it: no num_batches_tracked."""
    weights = {}
    for key, shape, _ in layout:
        if key.endswith("num_batches_tracked"):
            continue
        if key.endswith("running_var"):
            weights[key] = torch.rand(shape) + 0.5
        elif key.endswith("weight") and len(shape) == 1:  # batch-norm scale
            weights[key] = 1 + 0.1 * torch.randn(shape)
        else:  # conv weights (fan-in scaled to keep the signal alive), biases, running means
            fan_in = torch.Size(shape[1:]).numel()
            weights[key] = torch.randn(shape) * (fan_in**-0.5 if len(shape) == 4 else 0.1)
    return weights


def functional_unet(weights: dict[str, torch.Tensor], image: torch.Tensor, num_downs: int = 8):
    """The U-Net in eval mode, written from the architecture, reading weights by reference key.

    Outermost level: conv, inner levels, ReLU, transposed conv, tanh. Inner level: LeakyReLU(0.2),
    conv, batch norm (not at the innermost level), next level, ReLU, transposed conv, batch norm,
    then its input concatenated in front of its output. Convs are 4x4, stride 2, padding 1.
    """

    def down(x, key):
        return F.conv2d(x, weights[f"{key}.weight"], weights.get(f"{key}.bias"), 2, 1)

    def up(x, key):
        return F.conv_transpose2d(x, weights[f"{key}.weight"], weights.get(f"{key}.bias"), 2, 1)

    def norm(x, key):
        stats = [weights[f"{key}.{name}"] for name in ("running_mean", "running_var", "weight", "bias")]
        return F.batch_norm(x, *stats, training=False, eps=1e-5)

    def level(x, prefix, depth):
        h = down(F.leaky_relu(x, 0.2), f"{prefix}1")
        if depth == num_downs - 1:
            h = norm(up(F.relu(h), f"{prefix}3"), f"{prefix}4")
        else:
            h = level(norm(h, f"{prefix}2"), f"{prefix}3.model.", depth + 1)
            h = norm(up(F.relu(h), f"{prefix}5"), f"{prefix}6")
        return torch.cat([x, h], 1)

    h = level(down(image, "model.model.0"), "model.model.1.model.", 1)
    return torch.tanh(up(F.relu(h), "model.model.3"))


@torch.no_grad()
def test_reference_weights_load_losslessly_and_compute_the_architecture():
    # Full width on purpose: this is the published weights' layout (about 3 s on 2 CPU cores).
    torch.manual_seed(0)
    published = random_reference_weights(read_layout("unet_256_batch"))
    net = unet.unet_256(3, 3, norm="batch")
    net.load_state_dict(published, strict=True)

    state = net.state_dict()
    for key, tensor in published.items():
        assert torch.equal(state[key], tensor), key
    assert all(state[key] == 0 for key in state if key.endswith("num_batches_tracked"))

    image = torch.rand(1, 3, 256, 256) * 2 - 1
    expected = functional_unet(published, image)
    assert expected.std() > 0.1  # the weights keep a signal through all 8 levels
    torch.testing.assert_close(net.eval()(image), expected, atol=1e-5, rtol=0)


def test_reference_weights_with_batch_counters_load_too():
    # Some published files keep num_batches_tracked; those load strictly as well.
    layout = read_layout("unet_128_batch")
    weights = random_reference_weights(layout)
    weights.update({key: torch.tensor(7) for key, _, _ in layout if key.endswith("num_batches_tracked")})
    net = unet.unet_128(3, 3)
    net.load_state_dict(weights, strict=True)
    state = net.state_dict()
    assert len(state) == len(layout) == 70
    assert all(torch.equal(state[key], tensor) for key, tensor in weights.items())
