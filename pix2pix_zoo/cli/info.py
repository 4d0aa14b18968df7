"""``zoo info SPEC``: what a spec builds, without allocating its weights."""

from __future__ import annotations

import typer

from pix2pix_zoo.cli.output import print_json, print_table
from pix2pix_zoo.spec import describe


def info(
    spec: str = typer.Argument(..., metavar="SPEC", help="A spec such as 'unet_256+patch70+l1cgan' or 'unet(ngf=32)+l1'."),
    in_channels: int = typer.Option(3, "--in-channels", min=1, help="Channels of the input image."),
    out_channels: int = typer.Option(3, "--out-channels", min=1, help="Channels of the output image."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show a spec's canonical form, parameter counts, receptive field and size multiple."""
    facts = describe(spec, in_channels, out_channels)
    if as_json:
        print_json(facts)
        return
    generator, discriminator = facts["generator"], facts["discriminator"]
    rows = [
        ["canonical spec", facts["spec"]],
        ["generator", f"{generator['name']} ({generator['plugin']})"],
        ["generator parameters", f"{generator['parameters']:,}"],
        ["size multiple", str(generator["size_multiple"])],
        ["channels", f"{facts['in_channels']} -> {facts['out_channels']}"],
        ["objective", f"{facts['objective']['name']} ({facts['objective']['plugin']})"],
        ["conditional", "yes" if facts["objective"]["conditional"] else "no"],
    ]
    if discriminator is None:
        rows.append(["discriminator", "none"])
    else:
        rows += [
            ["discriminator", f"{discriminator['name']} ({discriminator['plugin']})"],
            ["discriminator parameters", f"{discriminator['parameters']:,}"],
            ["receptive field", f"{discriminator['receptive_field']}x{discriminator['receptive_field']}"],
            ["discriminator input channels", str(discriminator["in_channels"])],
        ]
    print_table(facts["spec"], ["", "value"], rows, wrap=("value",))
