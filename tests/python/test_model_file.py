"""Model-file metadata is validated completely when read: each defect is a ModelFileError
naming the field, for fn.load and for unpickling a ferronn.sklearn estimator alike."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

import ferronn as fn
from ferronn import _core
from ferronn.errors import ModelFileError
from ferronn.model_file import Metadata, read_metadata, write_metadata


@pytest.fixture(scope="module")
def fitted() -> fn.Sequential:
    X, y = fn.datasets.digits()
    m = fn.Sequential([fn.Dense(8, activation="relu"), fn.Dense(10)], seed=0)
    m.compile(metrics=["accuracy", "f1"])
    m.fit(X[:200], y[:200], epochs=2, verbose=0)
    return m


BAD = [
    ("[]", "JSON object"), ('"x"', "JSON object"), ("null", "JSON object"),
    ('{"epoch": -1}', "'epoch'"), ('{"epoch": 1e30}', "'epoch'"), ('{"epoch": Infinity}', "'epoch'"),
    ('{"epoch": 18446744073709551616}', "'epoch'"), ('{"epoch": true}', "'epoch'"),
    ('{"epochs_trained": -5}', "'epochs_trained'"), ('{"epochs_trained": 2.5}', "'epochs_trained'"),
    ('{"metrics": ["bogus"]}', "'metrics'"), ('{"metrics": ["mae"]}', "'metrics'"), ('{"metrics": "accuracy"}', "'metrics'"),
    ('{"metrics": [1]}', "'metrics'"), ('{"lr_scale": NaN}', "'lr_scale'"), ('{"lr_scale": -1}', "'lr_scale'"),
    ('{"lr_scale": "1"}', "'lr_scale'"), ('{"target_1d": 1}', "'target_1d'"), ('{"surprise": 1}', "surprise"),
    ("[" * 100_000 + "]" * 100_000, "not valid JSON"), ("{", "not valid JSON"),
]


@pytest.mark.parametrize("extra,named", BAD, ids=[b[0][:24] for b in BAD])
def test_load_refuses_bad_metadata_naming_the_field(fitted, extra, named):
    data = fitted._require_built("t").to_bytes(extra)
    with pytest.raises(ModelFileError, match=named.replace("[", r"\[")):
        fn.Sequential._from_net(*_core.Network.from_bytes(data))


@pytest.mark.parametrize("extra,named", BAD[:12], ids=[b[0][:24] for b in BAD[:12]])
def test_unpickling_an_estimator_refuses_bad_metadata(extra, named):
    pytest.importorskip("sklearn")
    from ferronn.sklearn import MLPClassifier

    X, y = fn.datasets.digits()
    with pytest.warns(Warning):  # ConvergenceWarning: two iterations only
        est = MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, random_state=0).fit(X[:200], y[:200])
    state = est.__getstate__()
    state["_model_bytes"] = est._model._require_built("t").to_bytes(extra)
    clone = MLPClassifier.__new__(MLPClassifier)
    with pytest.raises(ModelFileError, match=named.replace("[", r"\[")):
        clone.__setstate__(state)


def test_valid_metadata_round_trips(fitted, tmp_path):
    path = tmp_path / "m.safetensors"
    fitted.save(path)
    again = fn.load(path)
    assert again.metrics == fitted.metrics and again._epochs_trained == 2
    X, _ = fn.datasets.digits()
    np.testing.assert_array_equal(again.predict_raw(X[:50]), fitted.predict_raw(X[:50]))
    meta = Metadata(metrics=["accuracy"], target_1d=True, epochs_trained=7, lr_scale=0.25, epoch=9)
    assert read_metadata(write_metadata(meta), lambda names: names) == meta


def test_missing_fields_take_the_defaults(fitted):
    model = fn.Sequential._from_net(*_core.Network.from_bytes(fitted._require_built("t").to_bytes("{}")))
    assert model.metrics == [] and model._epochs_trained == 0 and not model._target_1d
    assert json.loads(model._extra())["lr_scale"] == 1.0


def test_an_estimator_still_pickles_and_unpickles():
    pytest.importorskip("sklearn")
    from ferronn.sklearn import MLPClassifier

    X, y = fn.datasets.digits()
    with pytest.warns(Warning):  # ConvergenceWarning: two iterations only
        est = MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, random_state=0).fit(X[:200], y[:200])
    clone = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(clone.predict(X[:50]), est.predict(X[:50]))
