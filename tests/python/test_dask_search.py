"""Hyperparameter search past one process: GridSearchCV on a Dask cluster.

A LocalCluster of 2 worker processes on loopback stands in for a real cluster
(the same code runs against `Client("tcp://scheduler:8786")`). Each fit uses one
ferronn thread (`n_threads=1`), so 2 workers × 1 thread never oversubscribe the
2 cores; the search must pick the same candidate as joblib's default backend.
"""

from __future__ import annotations

import joblib
import numpy as np
from distributed import Client, LocalCluster, get_task_stream
from sklearn.model_selection import GridSearchCV

import ferronn as fn
from ferronn.sklearn import MLPClassifier


def _search():
    est = MLPClassifier(hidden_layer_sizes=(16,), max_iter=40, random_state=0, n_threads=1)
    grid = {"alpha": [1e-4, 1e-1], "learning_rate_init": [1e-3, 1e-2]}  # 4 candidates
    return GridSearchCV(est, grid, cv=3)


def test_grid_search_on_a_two_worker_dask_cluster_matches_joblib():
    X, y = fn.datasets.digits()
    X, y = X[:600], y[:600]
    local = _search().fit(X, y)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        with get_task_stream(client) as tasks, joblib.parallel_backend("dask"):
            remote = _search().fit(X, y)
        workers_used = {t["worker"] for t in tasks.data}
    assert len(tasks.data) >= 4 * 3  # every (candidate, fold) fit ran on the cluster
    assert workers_used and all(w.startswith("tcp://127.0.0.1") for w in workers_used)
    assert remote.best_params_ == local.best_params_
    np.testing.assert_allclose(remote.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"])
