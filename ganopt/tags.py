"""TensorBoard tag names and what they mean (README, "Watching the gradients in TensorBoard").

The names that more than one module writes or reads are constants here; the descriptions
travel with the event files: TensorBoard shows them beside each chart.
"""

from __future__ import annotations

LOSS_D, LOSS_G = "loss/D", "loss/G"
LOSS_D_PENALTY, LOSS_D_TOTAL, LOSS_G_PENALTY = "loss/D_penalty", "loss/D_total", "loss/G_penalty"
#: per-layer gradient norms are GRAD_NORM/<network>/<parameter>, their total .../total
GRAD_NORM = "grad_norm"
GRAD_NORM_TOTAL = {network: f"{GRAD_NORM}/{network}/total" for network in ("G", "D")}
UPDATE_RATIO = "update_ratio"
UPDATE_RATIO_TOTAL = {network: f"{UPDATE_RATIO}/{network}/total" for network in ("G", "D")}
GRAD_SIGNAL_G = "grad_signal/G"
WASSERSTEIN = "wasserstein/estimate"
STEPS_PER_SEC = "perf/steps_per_sec"
#: evaluation metrics are METRICS/<name>
METRICS = "metrics"
#: metrics.json keys → the logged scalar they report (its value at the last log step)
FINAL_SCALARS = {
    "loss_D": LOSS_D,
    "loss_G": LOSS_G,
    "grad_norm_G": GRAD_NORM_TOTAL["G"],
    "grad_norm_D": GRAD_NORM_TOTAL["D"],
    "grad_signal_G": GRAD_SIGNAL_G,
}

#: prefix → description, for tags whose meaning is easy to misread; the longest prefix wins
DESCRIPTIONS: dict[str, str] = {
    "loss/D": (
        "D's loss on the logged batch, without penalties. D's tags describe the last critic "
        "step of the logged generator step."
    ),
    "loss/D_penalty": "The gradient penalty or regularizer term added to D's loss.",
    "loss/G_penalty": "A G-side regularizer's term added to G's loss (only where one is set).",
    "loss/D_total": (
        "loss/D + loss/D_penalty: what D descends, and what grad_norm/D/total is the gradient of."
    ),
    "wasserstein/estimate": (
        "mean D(x) - mean D(G(z)). A K-Lipschitz critic estimates K * W1: under weight "
        "clipping K is unknown (it depends on c and the weights), so compare this within a run, "
        "not across clipping bounds or architectures. With WGAN-GP, K is about 1."
    ),
    "grad_norm/D": (
        "L2 norm of the gradient of D's whole objective (loss and penalty) after backward, "
        "before clipping or the step; the last critic step of the logged generator step."
    ),
    "grad_norm/G": "L2 norm of the gradient of G's loss after backward, before the step.",
    "grad_norm_shadow/G": (
        "G's gradient norm if this generator loss were used on the same batch, through the D "
        "trained for the run's own loss (not a D trained for the other loss)."
    ),
    "grad_signal/G": (
        "mean |d loss_G / d logit| over fakes: D(G(z)) for the standard loss, 1 - D(G(z)) for "
        "the non-saturating one, 1 for WGAN. The factor that vanishes."
    ),
    "update_ratio/G": (
        "||delta theta|| / ||theta|| of G's optimizer step. Stuck below 1e-6, G is not "
        "learning whatever its loss says (alarm: stalled_step)."
    ),
    "update_ratio/D": ("||delta theta|| / ||theta|| of D's last critic step, clipping included."),
}


def description(tag: str) -> str | None:
    """The description of ``tag`` (by its longest matching prefix), or None."""
    matches = [p for p in DESCRIPTIONS if tag == p or tag.startswith(p + "/")]
    return DESCRIPTIONS[max(matches, key=len)] if matches else None
