"""TensorBoard tag names and what they mean (docs/tensorboard.md).

The names that more than one module writes or reads are constants here; the descriptions
travel with the event files: TensorBoard shows them beside each chart.
"""

from __future__ import annotations

LOSS_D, LOSS_G = "loss/D", "loss/G"
LOSS_D_PENALTY, LOSS_D_TOTAL, LOSS_G_PENALTY = "loss/D_penalty", "loss/D_total", "loss/G_penalty"
#: per-layer gradient norms are GRAD_NORM/<network>/<parameter>, their total .../total
GRAD_NORM = "grad_norm"
GRAD_NORM_TOTAL = {network: f"{GRAD_NORM}/{network}/total" for network in ("G", "D")}
#: log10 of each total, so that a chart shows orders of magnitude (TensorBoard's are linear)
GRAD_NORM_LOG10 = {network: f"grad_norm_log10/{network}/total" for network in ("G", "D")}
UPDATE_RATIO = "update_ratio"
UPDATE_RATIO_TOTAL = {network: f"{UPDATE_RATIO}/{network}/total" for network in ("G", "D")}
GRAD_SIGNAL_G = "grad_signal/G"
WASSERSTEIN = "wasserstein/estimate"
#: D memorizing its training images (docs/limited_data.md): image data, log steps
D_OUT_TRAIN, D_OUT_HELDOUT = "D/out_train", "D/out_heldout"
D_OVERFIT_GAP, D_ADA_RT = "D/overfit_gap", "D/ada_rt"
STEPS_PER_SEC = "perf/steps_per_sec"
#: evaluation metrics are METRICS/<name>
METRICS = "metrics"
#: the game's spectrum (ganopt/diagnostics/game.py), and its picture
GAME = "game"
GAME_SPECTRUM = f"{GAME}/spectrum"
GAME_TAGS = tuple(
    f"{GAME}/{name}"
    for name in (
        "eig_real_max",
        "eig_imag_max",
        "rotation",
        "rotational_share",
        "hessian_G_min",
        "hessian_G_max",
        "hessian_D_min",
        "hessian_D_max",
        "field_norm",
    )
)
#: metrics.json keys → the logged scalar they report (its value at the last log step)
FINAL_SCALARS = {
    "loss_D": LOSS_D,
    "loss_G": LOSS_G,
    "grad_norm_G": GRAD_NORM_TOTAL["G"],
    "grad_norm_D": GRAD_NORM_TOTAL["D"],
    "grad_signal_G": GRAD_SIGNAL_G,
    "overfit_gap": D_OVERFIT_GAP,
    "ada_rt": D_ADA_RT,
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
    "D/out_train": (
        "D's mean output (logit) on the training reals of its last critic step, as D saw them "
        "(augmented under aug=diffaugment): D/out_real under the name that pairs it with "
        "D/out_heldout. Image data only."
    ),
    "D/out_heldout": (
        "D's mean output on a fixed batch of held-out reals (data.holdout), which no one trains "
        "on, seen as D sees its training reals (the same augmentation), without a gradient and "
        "without moving the training RNG or D's buffers. Image data with held-out images only."
    ),
    "D/overfit_gap": (
        "D/out_train - D/out_heldout. Near 0 while D generalizes; growing while D memorizes "
        "its training images (Karras et al. 2020, Fig. 1): the sign of too little data, which "
        "aug=diffaugment treats (docs/limited_data.md)."
    ),
    "D/ada_rt": (
        "ADA's overfitting heuristic r_t = E[sign(D(x))] over the training reals of D's last "
        "critic step (Karras et al. 2020, section 3): 0 while D is unsure, toward 1 as it "
        "separates its training reals with certainty (ADA aims at 0.6). Meaningful where 0 is "
        "D's decision boundary (logistic and hinge losses), not for a WGAN critic. Image data "
        "only."
    ),
    "grad_norm/D": (
        "L2 norm of the gradient of D's whole objective (loss and penalty) after backward, "
        "before clipping or the step; the last critic step of the logged generator step."
    ),
    "grad_norm/G": "L2 norm of the gradient of G's loss after backward, before the step.",
    "grad_norm_log10": (
        "log10 of grad_norm/<network>/total: the gradient flow chart on a scale of orders of "
        "magnitude, where a vanished G (1e-6) and a healthy clipped critic (1e-4) differ."
    ),
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
    "game": (
        "The game at this step, on a fixed batch: eigenvalues (top-k by modulus, Arnoldi) of the "
        "Jacobian of -v, v = (grad_theta L_G, grad_phi L_D); all real parts < 0 where small "
        "simultaneous steps converge."
    ),
    "game/rotation": (
        "max |Im| / |Re| over the top-k eigenvalues of -v's Jacobian (capped at 1e6 for purely "
        "imaginary ones): large means the players circle each other."
    ),
    "game/rotational_share": (
        "||A v||^2 / (||A v||^2 + ||S v||^2), S and A the symmetric and antisymmetric parts of "
        "v's Jacobian: 1 for a pure rotation, 0 for a potential game."
    ),
    "game/hessian_G": (
        "Extreme eigenvalues (Lanczos) of the Hessian of G's loss in G's weights; a local Nash "
        "equilibrium has min >= 0 for G and for D (each minimizes its own loss)."
    ),
    "game/hessian_D": "Extreme eigenvalues (Lanczos) of the Hessian of D's loss in D's weights.",
    "game/field_norm": "||v||: 0 at a stationary point of the game.",
}


def description(tag: str) -> str | None:
    """The description of ``tag`` (by its longest matching prefix), or None."""
    matches = [p for p in DESCRIPTIONS if tag == p or tag.startswith(p + "/")]
    return DESCRIPTIONS[max(matches, key=len)] if matches else None
