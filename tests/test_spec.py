"""The spec grammar: parsing, validation against factory signatures, coercion, canonical form."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pix2pix_zoo.components import Option, format_value
from pix2pix_zoo.errors import SpecError
from pix2pix_zoo.plugins import get_registry
from pix2pix_zoo.spec import ParsedPart, canonical, parse, resolve

REGISTRY = get_registry()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("unet+patch+l1cgan", "unet_256+patch70+l1cgan"),
        ("unet_256(ngf=64,norm=batch,dropout=true)+patch70(ndf=64)+l1cgan(lambda_l1=100)", "unet_256+patch70+l1cgan"),
        ("unet(norm=instance, ngf=32)+patch70+l1cgan(lambda_l1=50)", "unet_256(ngf=32,norm=instance)+patch70+l1cgan(lambda_l1=50)"),
        ("  encdec ( dropout = no ) + image + gan ( gan_mode = lsgan ) ", "encdec_256(dropout=false)+image+gan(gan_mode=lsgan)"),
        ("unet_128+l1", "unet_128+l1"),
        ("unet()+l1(lambda_l1=2.5)", "unet_256+l1(lambda_l1=2.5)"),
        ("resnet_9blocks(norm=batch,padding_type=zero)+pixel+cgan(gan_mode=hinge)", "resnet_9blocks(norm=batch,padding_type=zero)+pixel+cgan(gan_mode=hinge)"),
        ("unet+patch+l1cgan(lambda_l1=1e+3)", "unet_256+patch70+l1cgan(lambda_l1=1000)"),
    ],
)
def test_canonical(text, expected):
    assert canonical(text) == expected
    assert canonical(expected) == expected


def test_options_are_coerced_from_annotations():
    spec = resolve("unet(ngf=32,dropout=off)+patch70(norm=instance)+l1cgan(lambda_l1=50)")
    assert spec.generator.kwargs() == {"ngf": 32, "dropout": False}
    assert spec.discriminator.kwargs() == {"norm": "instance"}
    assert spec.objective.kwargs() == {"lambda_l1": 50.0}
    assert isinstance(spec.objective.kwargs()["lambda_l1"], float)


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("unet+patchh70+l1cgan", ["unknown discriminator 'patchh70'", "patch70"]),
        ("unte+patch70+l1cgan", ["unknown generator 'unte'", "unet"]),
        ("unet+patch70+l1cgn", ["unknown objective 'l1cgn'", "l1cgan"]),
        ("unet(ngff=32)+patch70+l1cgan", ["has no option 'ngff'", "ngf"]),
        ("unet(ngf=abc)+patch70+l1cgan", ["option 'ngf' must be an integer"]),
        ("unet(ngf=3.5)+patch70+l1cgan", ["option 'ngf' must be an integer"]),
        ("unet(norm=bach)+patch70+l1cgan", ["must be one of batch, instance, none, syncbatch", "did you mean batch"]),
        ("unet(dropout=maybe)+patch70+l1cgan", ["must be true or false"]),
        ("unet+patch70+l1cgan(lambda_l1=nan)", ["finite"]),
        ("patch70+unet+l1cgan", ["'patch70' is a discriminator, not a generator"]),
        ("unet+l1cgan+patch70", ["'l1cgan' is an objective, not a discriminator"]),
        ("unet+l1cgan", ["trains against a discriminator", "patch70"]),
        ("unet+patch70+l1", ["uses no discriminator"]),
        ("unet", ["1 part(s)"]),
        ("unet+patch70+l1cgan+l1", ["4 part(s)"]),
        ("", ["empty spec"]),
        ("unet++l1", ["part '(empty)'"]),
        ("unet(ngf=32+l1", ["'(' without ')'"]),
        ("unet)+l1", ["')' without '('"]),
        ("unet((ngf=1))+l1", ["nested parentheses"]),
        ("unet(ngf)+l1", ["option 'ngf' of 'unet' is not key=value"]),
        ("unet(ngf=1,ngf=2)+l1", ["given twice"]),
        ("unet(ngf=32)x+l1", ["is not NAME"]),
        ("l1(lambda_l1=1)+l1", ["'l1' is an objective, not a generator"]),
        ("unet+l1(lambda_l1=0)", ["objective 'l1(lambda_l1=0)'", "needs an L1 term"]),
        ("unet+patch+l1cgan(lambda_l1=-1)", ["lambda_l1 must be >= 0"]),
    ],
)
def test_invalid_specs_say_what_is_wrong_in_one_line(text, fragments):
    with pytest.raises(SpecError) as error:
        resolve(text)
    message = str(error.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


# -- property-based ----------------------------------------------------------------------------


def _value_for(option: Option) -> st.SearchStrategy:
    if option.choices is not None:
        return st.sampled_from(option.choices)
    if option.type is bool:
        return st.booleans()
    if option.type is int:
        return st.integers(1, 4096)
    if option.type is float:
        return st.floats(1e-3, 1e6, allow_nan=False, allow_infinity=False)
    return st.text("abcdefghij_0123456789", min_size=1, max_size=8)


def _raw_text(option: Option, value) -> st.SearchStrategy[str]:
    """Ways a user may write a value: canonical text, or the other spellings the coercion accepts."""
    if isinstance(value, bool):
        return st.sampled_from(["true", "yes", "on", "1", "True"] if value else ["false", "no", "off", "0", "FALSE"])
    if isinstance(value, float):
        return st.sampled_from([repr(value), format_value(value)])
    return st.just(str(value))


@st.composite
def written_parts(draw, kind: str) -> tuple[str, str, dict]:
    """(text as written, component name, coerced options) for a random component of ``kind``."""
    component = draw(st.sampled_from(REGISTRY.components(kind)))
    label = draw(st.sampled_from((component.name, *component.aliases)))
    chosen = draw(st.lists(st.sampled_from(component.options), unique_by=lambda o: o.name)) if component.options else []
    written, values = [], {}
    for option in chosen:
        value = draw(_value_for(option))
        values[option.name] = option.coerce(value)
        space = draw(st.sampled_from(["", " "]))
        written.append(f"{space}{option.name}{space}={space}{draw(_raw_text(option, value))}")
    parens = draw(st.booleans())
    text = f"{label}({','.join(written)})" if chosen or parens else label
    return text, component.name, values


@st.composite
def valid_specs(draw) -> tuple[str, list[tuple[str, dict]]]:
    generator = draw(written_parts("generator"))
    objective = draw(written_parts("objective"))
    parts = [generator]
    if REGISTRY.get(objective[1]).factory(**objective[2]).uses_discriminator:
        parts.append(draw(written_parts("discriminator")))
    parts.append(objective)
    return "+".join(p[0] for p in parts), [(p[1], p[2]) for p in parts]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_specs())
def test_valid_specs_resolve_and_round_trip(case):
    text, expected = case
    spec = resolve(text)
    assert [p.name for p in spec.parts] == [name for name, _ in expected]
    for part, (name, values) in zip(spec.parts, expected):
        defaults = {o.name: o.coerce(o.default) for o in part.component.options}
        assert part.kwargs() == {k: v for k, v in values.items() if v != defaults[k]}
    form = str(spec)
    assert canonical(form) == form  # canonical is a fixed point
    assert resolve(form) == spec  # and loses nothing
    reparsed = parse(form)
    assert [(p.name, dict(p.options)) for p in reparsed] == [
        (part.name, {k: format_value(v) for k, v in part.options}) for part in spec.parts
    ]


@st.composite
def parsed_parts(draw) -> list[ParsedPart]:
    names = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
    keys = st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True)
    values = st.from_regex(r"[^=,()\s]{1,8}", fullmatch=True)
    count = draw(st.integers(1, 4))
    return [
        ParsedPart(draw(names), tuple(draw(st.dictionaries(keys, values, max_size=3)).items())) for _ in range(count)
    ]


@settings(max_examples=300, deadline=None)
@given(parsed_parts())
def test_parse_inverts_formatting(parts):
    text = "+".join(f"{p.name}({','.join(f'{k}={v}' for k, v in p.options)})" if p.options else p.name for p in parts)
    assert parse(text) == parts


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from("unet_2568patch70l1cgan+(),= xyzQ-é\t"), max_size=40))
def test_arbitrary_text_is_either_a_spec_or_a_spec_error(text):
    try:
        spec = resolve(text)
    except SpecError as error:
        assert "\n" not in str(error)
    else:
        assert canonical(str(spec)) == str(spec)


@settings(max_examples=200, deadline=None)
@given(st.from_regex(r"[a-z][a-z0-9_]{1,12}", fullmatch=True))
def test_unknown_names_are_rejected_with_suggestions(name):
    if name in REGISTRY:
        return
    with pytest.raises(SpecError, match=f"unknown generator '{name}'"):
        resolve(f"{name}+patch70+l1cgan")

