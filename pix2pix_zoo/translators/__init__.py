"""The translator catalog: pretrained translators by name, pulled into the cache, and runs published.

Four rooms, each of one responsibility:

* :mod:`~pix2pix_zoo.translators.entries`: what an entry is (the registry TOML schema), where
  entries come from (shipped ``registry/``, ``$ZOO_HOME/registry/``, plugins' hooks) and writing one;
* :mod:`~pix2pix_zoo.translators.pull`: downloading, verifying and converting an entry's weights
  into ``$ZOO_HOME/translators/<name>/``, and :func:`locate` (a path or a name -> a weights file);
* :mod:`~pix2pix_zoo.translators.hub`: Hub names, ``hf://ORG/NAME[@REVISION]``, pulled with
  huggingface_hub into ``$ZOO_HOME/translators/_hub/`` and checked against their first pull;
* :mod:`~pix2pix_zoo.translators.publish`: a training run made an entry, optionally on the Hub.

The catalog stores and checks translator files through :mod:`pix2pix_zoo.translator_file`; it
never imports the trainer (``engine/``) nor the :class:`~pix2pix_zoo.translator.Translator`
runtime, which sits above it. The plugin host knows nothing of the catalog: the catalog asks the
host for plugins' entries. (The component registry is :mod:`pix2pix_zoo.components`, and the
dataset catalog :mod:`pix2pix_zoo.data.catalog`.)
"""

from pix2pix_zoo.translators.entries import (
    MIRROR_VARIABLE,
    NAME_PATTERN,
    SHIPPED_PACKAGE,
    SOURCE_RECORD,
    TranslatorEntry,
    entry_toml,
    find_translator,
    list_translators,
    load_catalog,
    parse_entry,
    plugin_entries,
)
from pix2pix_zoo.translators.hub import HubName, is_hub_name, parse_hub_name, pull_hub
from pix2pix_zoo.translators.publish import (
    MODEL_CARD,
    PAPER_CITATION,
    PUBLISH_RECORD,
    SAMPLE_FILE,
    Published,
    default_publish_name,
    hub_repo,
    model_card,
    publish,
)
from pix2pix_zoo.translators.pull import locate, pull

__all__ = [
    "HubName", "MIRROR_VARIABLE", "MODEL_CARD", "NAME_PATTERN", "PAPER_CITATION", "PUBLISH_RECORD", "Published",
    "SAMPLE_FILE", "SHIPPED_PACKAGE", "SOURCE_RECORD", "TranslatorEntry", "default_publish_name", "entry_toml",
    "find_translator", "hub_repo", "is_hub_name", "list_translators", "load_catalog", "locate", "model_card",
    "parse_entry", "parse_hub_name", "plugin_entries", "publish", "pull", "pull_hub",
]
