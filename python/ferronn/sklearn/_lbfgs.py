"""``solver="lbfgs"``: scipy's L-BFGS-B over the flat parameter vector, minimising
scikit-learn's full-batch objective, as scikit-learn's MLPs do.

scikit-learn minimises ``f = data_loss + alpha / (2 · Σw) · Σ‖W‖²`` (the data loss
averaged over the samples with their weights ``w``; kernels only in the penalty)
with ``maxiter=max_iter``, ``maxfun=max_fun`` and ``gtol=tol`` (scipy's defaults
otherwise). Each evaluation here is one call into the Rust core
(``_core.Network.loss_and_grads``: a full-batch forward and backward, nothing
updated), after writing the point into the network (``set_flat_params``).

ferronn's objective is ``c`` times scikit-learn's (``c`` from ``_BaseMLP._loss_scale``:
ferronn averages over outputs where scikit-learn sums), so the network is built
with ``l2 = c · alpha / (2 · Σw)``, the sample weights are normalised to mean 1, and
the loss and gradient handed to scipy are divided by ``c``. For several regression
outputs scikit-learn's reported loss averages its data term over the outputs while
its gradient sums them; the value handed to scipy follows scikit-learn's, so the
optimiser sees exactly what scikit-learn's does (up to float32 arithmetic in the core).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import scipy
import scipy.optimize

from sklearn.exceptions import ConvergenceWarning

from .._warnings import warn_user

_SCIPY = tuple(int(p) for p in scipy.__version__.split(".")[:2] if p.isdigit())


def _options(est: Any) -> dict[str, Any]:
    options: dict[str, Any] = {"maxfun": int(est.max_fun), "maxiter": int(est.max_iter), "gtol": float(est.tol)}
    if _SCIPY < (1, 15):
        # scipy >= 1.15 deprecates iprint (and prints nothing); scikit-learn passes it only before.
        options["iprint"] = 1 if (est.verbose is True or est.verbose >= 1) else -1
    return options


def fit_lbfgs(est: Any, net: Any, x32: np.ndarray, targets: np.ndarray, weights: Optional[np.ndarray],
              sw_sum: float) -> None:
    """Runs L-BFGS-B from the network's current weights and leaves the optimum in it;
    sets ``n_iter_`` and ``loss_`` and warns ``ConvergenceWarning`` as scikit-learn does.
    ``weights``: float32 sample weights normalised to mean 1 (None: all equal);
    ``sw_sum``: their sum before normalising (scikit-learn's divisor of the penalty)."""
    c = est._loss_scale(est.n_outputs_)
    k = est.n_outputs_
    averaged = est._loss_kind() == "identity" and k > 1 and est.alpha > 0
    kernel = _kernel_mask(est, net) if averaged else None
    half_alpha = 0.5 * float(est.alpha) / sw_sum
    offset = est._loss_offset  # scikit-learn's Poisson loss: a constant more than the core's (see _base)

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        net.set_flat_params(np.ascontiguousarray(theta, dtype=np.float32))
        loss, grad = net.loss_and_grads(x32, targets, weights)
        f = loss / c + offset
        if kernel is not None:
            # scikit-learn reports the data term averaged over the k outputs (see the module docs).
            w = theta[kernel]
            penalty = half_alpha * float(np.dot(w, w))
            f = (f - penalty) / k + penalty
        return f, grad.astype(np.float64) / c

    theta0 = net.flat_params().astype(np.float64)
    result = scipy.optimize.minimize(objective, theta0, method="L-BFGS-B", jac=True, options=_options(est))
    net.set_flat_params(np.ascontiguousarray(result.x, dtype=np.float32))
    est.n_iter_ = min(int(result.nit), int(est.max_iter))
    est.loss_ = float(result.fun)
    if result.status != 0:
        msg = (f"lbfgs failed to converge after {est.n_iter_} iteration(s) (status={result.status}):\n"
               f"{result.message}\n")
        if est.n_iter_ == est.max_iter:
            msg += f"\nIncrease the number of iterations (max_iter={est.max_iter}) to improve the convergence."
        msg += "\nScaling the data may also help (scikit-learn's preprocessing module)."
        warn_user(msg, ConvergenceWarning)


def _kernel_mask(est: Any, net: Any) -> np.ndarray:
    """Where the Dense kernels (what the L2 term penalises) sit in the flat vector."""
    kernels = {f"layers.{i}.weight" for i in est.__dict__["_dense_layers"]}
    parts = [np.full(a.size, name in kernels) for name, a in net.params()]
    return np.concatenate(parts)
