"""``keras.metrics``: Keras' metric classes for ``compile(metrics=[...])``, over ferronn's metrics.

Accuracy (``Accuracy``, ``SparseCategoricalAccuracy``, ``CategoricalAccuracy``,
``BinaryAccuracy``) is counted by the core during the epoch, as Keras does, and
logged under the Keras name it was given. The other metrics are computed at the end
of each epoch on the whole training set (see ``Sequential.compile``); ``Precision``,
``Recall`` and ``F1Score`` average over classes (macro), where Keras' ``Precision``
and ``Recall`` are binary. Stateful custom ``Metric`` subclasses are not supported;
a function ``f(y_true, y_pred) -> float`` is.
"""

from __future__ import annotations

from typing import Any, Optional

from ._common import missing_attr, unsupported

__all__ = ["Metric", "Accuracy", "SparseCategoricalAccuracy", "CategoricalAccuracy", "BinaryAccuracy",
           "Precision", "Recall", "F1Score", "MeanAbsoluteError", "MeanSquaredError", "R2Score",
           "SparseTopKCategoricalAccuracy"]


class Metric:
    """Base of the metric classes: ``metric_name`` is the ferronn name ``compile`` reads."""

    metric_name = ""

    def __init__(self, name: Optional[str] = None, dtype: Any = None) -> None:
        if not type(self).metric_name:
            unsupported("a custom keras.metrics.Metric subclass (update_state / result)",
                        "pass a function f(y_true, y_pred) -> float to compile(metrics=[...]) instead")
        self.name = name or type(self).metric_name

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _metric(class_name: str, ferronn_name: str, doc: str) -> type:
    return type(class_name, (Metric,), {"metric_name": ferronn_name, "__doc__": doc, "__module__": __name__})


Accuracy = _metric("Accuracy", "accuracy", "The fraction of samples classified correctly.")
SparseCategoricalAccuracy = _metric("SparseCategoricalAccuracy", "sparse_categorical_accuracy",
                                    "Accuracy against integer class labels.")
CategoricalAccuracy = _metric("CategoricalAccuracy", "categorical_accuracy", "Accuracy against one-hot targets.")
BinaryAccuracy = _metric("BinaryAccuracy", "binary_accuracy", "Accuracy of 0/1 predictions (threshold 0.5).")
Precision = _metric("Precision", "precision", "Precision, averaged over classes (macro).")
Recall = _metric("Recall", "recall", "Recall, averaged over classes (macro).")
F1Score = _metric("F1Score", "f1", "F1 score, averaged over classes (macro).")
MeanAbsoluteError = _metric("MeanAbsoluteError", "mae", "Mean absolute error (regression).")
MeanSquaredError = _metric("MeanSquaredError", "mse", "Mean squared error (regression).")
R2Score = _metric("R2Score", "r2", "Coefficient of determination (regression).")
SparseTopKCategoricalAccuracy = _metric("SparseTopKCategoricalAccuracy", "top_k_accuracy",
                                        "Whether the label is among the 5 highest scores.")


def __getattr__(name: str) -> Any:
    missing_attr("metrics", name, {n: "ferronn's metrics are listed in ferronn.metrics.NAMES" for n in
                                   ("AUC", "TruePositives", "FalsePositives", "TrueNegatives", "FalseNegatives",
                                    "MeanIoU", "IoU", "KLDivergence", "Mean", "Sum", "MeanMetricWrapper",
                                    "TopKCategoricalAccuracy", "PrecisionAtRecall", "RecallAtPrecision",
                                    "FBetaScore", "CosineSimilarity", "LogCoshError", "RootMeanSquaredError")})
