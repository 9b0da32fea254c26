"""The typed, versioned manifest: lossless JSON round trip, old manifests read, bad ones refused."""

import json

import pytest

from adapterxl.errors import StoreError
from adapterxl.manifest import MANIFEST_VERSION, Manifest


def test_round_trip_is_lossless_and_leaves_out_absent_extras():
    m = Manifest("nli", "tiny-xlmr", task="mnli", kind="adapter", adapter_config="seq_bn", metrics={"en": {"a": 1}})
    data = m.to_dict()
    assert data["manifest_version"] == MANIFEST_VERSION
    assert "fusion" not in data and "files" not in data  # extras a run did not produce are not written
    assert Manifest.from_dict(json.loads(json.dumps(data))) == m


def test_a_manifest_from_before_versions_reads_unchanged():
    old = {"name": "x", "task": "xnli", "base_model": "xlm-roberta-large", "kind": "adapter", "seed": 3}
    m = Manifest.from_dict(old)
    assert (m.task, m.seed, m.kind, m.manifest_version) == ("xnli", 3, "adapter", MANIFEST_VERSION)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "x", "base_model": "m", "manifest_version": MANIFEST_VERSION + 1}, "newer adapterxl"),
        ({"name": "x", "base_model": "m", "pickle_me": 1}, r"unknown manifest key\(s\) \['pickle_me'\]"),
        ({"name": "x"}, r"lacks \['base_model'\]"),
        (["not", "a", "dict"], "a manifest is a JSON object"),
    ],
)
def test_bad_manifests_are_store_errors_naming_the_file(data, message):
    with pytest.raises(StoreError, match=message) as caught:
        Manifest.from_dict(data, "store/x/manifest.json")
    assert "store/x/manifest.json" in str(caught.value)
