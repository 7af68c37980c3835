"""Every config group option composes and builds; bad input is rejected with the key's name."""

import importlib.util
import re

import pytest
import torch
from PIL import Image

from ganopt.composition import check_group_overrides, compose_config, config_dir
from ganopt.config import ConfigError
from ganopt.setup import registry
from ganopt.setup.assembly import build


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))


def test_spec_groups_are_all_present():
    assert set(options("loss")) >= {"standard", "nonsaturating", "wgan"}
    assert set(options("optim")) >= {"sgd", "sgd_clip", "adam", "rmsprop", "rmsprop_clip"}
    assert set(options("model")) >= {"mlp"}
    assert set(options("data")) >= {"ring8", "grid25", "swissroll"}


#: what each option needs beside it: image data needs an image model, and the reverse
PARTNERS = {
    "model=dcgan": ["data=digits"],
    "data=digits": ["model=dcgan"],
    "data=folder": ["model=dcgan", "data.resolution=16", "data.holdout=0"],  # one image
    "aug=diffaugment": ["model=dcgan", "data=digits"],
    "data=mnist": ["model=dcgan"],
    "data=fashion_mnist": ["model=dcgan"],
    "data=cifar10": ["model=dcgan"],
    **{f"+sn_adam={name}": ["experiment=sngan"] for name in options("sn_adam")},
    # under a preset that sets Adam's betas (the default adam_decay), SGD would be refused
    **{f"optimizer@optim.{n}={o}": ["optim=sgd"] for n in "gd" for o in options("optimizer")},
    # extragradient extrapolates both players or neither: the other one is ExtraSGD
    **{
        f"optimizer@optim.{n}=extra_{o}": ["optim=extra_sgd"] for n in "gd" for o in ("adam", "sgd")
    },
}
HAS_TORCHVISION = importlib.util.find_spec("torchvision") is not None
#: options that build image data (the first to build digits trains the digits classifier)
IMAGE_OPTIONS = {"model=dcgan", "data=digits", "data=folder", "experiment=dcgan_paper"}
IMAGE_OPTIONS |= {"aug=diffaugment"}


EVERY_OPTION = [
    *(
        f"{group}={name}"
        for group in (
            "loss",
            "optim",
            "model",
            "data",
            "reg",
            "aug",
            "experiment",
            "hparams_search",
        )
        for name in options(group)
    ),
    *(f"optimizer@optim.{net}={name}" for net in "gd" for name in options("optimizer")),
    *(f"+sn_adam={name}" for name in options("sn_adam")),
]
#: the fast subset composes the main groups; presets and bases (built from them) run as slow
FAST_GROUPS = ("loss=", "optim=", "model=", "data=", "reg=", "aug=")


@pytest.mark.parametrize(
    "override",
    [
        o
        if o.startswith(FAST_GROUPS) and o not in IMAGE_OPTIONS
        else pytest.param(o, marks=pytest.mark.slow)
        for o in EVERY_OPTION
    ],
)
def test_every_group_option_composes_and_builds(override, tmp_path):
    overrides = [override, "trainer.device=cpu", *PARTNERS.get(override, [])]
    if override == "data=folder":
        Image.new("RGB", (20, 20)).save(tmp_path / "x.png")
        overrides.append(f"data.path={tmp_path}")
    if override in ("data=mnist", "data=fashion_mnist", "data=cifar10"):
        if HAS_TORCHVISION:
            pytest.skip("needs the dataset's files (tests never download)")
        with pytest.raises(ConfigError, match="needs torchvision"):
            build(compose_config(overrides))
        return
    parts = build(compose_config(overrides))
    z = torch.randn(4, parts.G.z_dim)
    assert parts.D(parts.G(z)).shape == (4,)
    assert next(parts.data).shape == (parts.settings.batch_size, *parts.data.shape)


def test_defaults_follow_the_spec():
    cfg = compose_config()
    assert cfg.model.g.hidden == [128, 128, 128]
    assert cfg.model.d.hidden == [128, 128, 128]
    assert cfg.model.z_dim == 2
    assert cfg.trainer.batch_size == 256
    assert cfg.trainer.d_steps == 1
    assert cfg.loss.name == "nonsaturating"


def test_the_default_recipe():
    """docs/strategies.md, "The default recipe": non-saturating + R1 (gamma 1) + EMA 0.999,
    Adam 1e-3 with betas (0.5, 0.9) decayed linearly over the second half of 5000 steps."""
    cfg = compose_config()
    assert cfg.reg.name == "r1" and cfg.reg.gamma == 1.0
    assert cfg.optim.g.lr == cfg.optim.d.lr == 1e-3
    assert list(cfg.optim.g.betas) == list(cfg.optim.d.betas) == [0.5, 0.9]
    assert cfg.optim.lr_decay == 0.5
    assert cfg.trainer.ema_decay == 0.999
    assert cfg.trainer.steps == 5000


@pytest.mark.parametrize(
    ("optim", "clip", "lr"),
    [("sgd_clip", 0.01, 0.5), ("rmsprop_clip", 0.01, 5e-5), ("adam", None, 2e-4)],
)
def test_optim_presets(optim, clip, lr):
    parts = build(compose_config([f"optim={optim}"]))
    assert (parts.clipper.bound if parts.clipper else None) == clip
    assert parts.opt_D.param_groups[0]["lr"] == lr


def test_adam_is_dcgans():
    cfg = compose_config(["optim=adam"])
    assert cfg.optim.g.lr == cfg.optim.d.lr == 2e-4
    assert list(cfg.optim.d.betas) == [0.5, 0.999]
    assert cfg.optim.lr_decay == 0


def test_wgan_losses_bring_n_critic_5_and_no_other_regularizer():
    for loss in ("wgan", "wgan_gp"):
        cfg = compose_config([f"loss={loss}"])
        assert cfg.trainer.d_steps == 5
        assert cfg.reg.name == "none"
    cfg = compose_config(["loss=wgan", "trainer.d_steps=2", "reg=r2"])  # the command line wins
    assert cfg.trainer.d_steps == 2
    assert cfg.reg.name == "r2"


@pytest.mark.parametrize("flat", ["true", "false"])
def test_each_network_gets_its_own_optimizer_and_lr(flat):
    parts = build(compose_config(["optim.d.lr=0.002", f"trainer.flat_params={flat}"]))
    assert parts.opt_G is not parts.opt_D
    assert parts.opt_G.param_groups[0]["lr"] == 1e-3
    assert parts.opt_D.param_groups[0]["lr"] == 0.002
    for optimizer, network, name in ((parts.opt_G, parts.G, "G"), (parts.opt_D, parts.D, "D")):
        stepped = [p for group in optimizer.param_groups for p in group["params"]]
        if flat == "true":  # one buffer, whose views the network's parameters are
            assert stepped == [parts.flat[name].flat]
            assert parts.flat[name].params == list(network.parameters())
            assert all(
                p.untyped_storage().data_ptr() == parts.flat[name].flat.data_ptr()
                for p in network.parameters()
            )
        else:
            assert parts.flat == {}
            assert [id(p) for p in stepped] == [id(p) for p in network.parameters()]


def test_a_lazy_regularizers_network_keeps_its_tensors_and_other_optimizers_too(monkeypatch):
    """A lazy R1 step leaves D's last bias without a gradient, which a per-tensor optimizer
    skips and one buffer could not; Adagrad is not on the list of elementwise updates."""
    assert set(build(compose_config(["reg.every=4"])).flat) == {"G"}
    monkeypatch.setitem(registry.OPTIMIZERS, "adagrad", torch.optim.Adagrad)
    cfg = compose_config(["optim=adam", "optim.g.name=adagrad", "~optim.g.betas"])
    assert set(build(cfg).flat) == {"D"}


def test_optimizers_can_be_mixed_per_network():
    parts = build(compose_config(["optim=adam", "optimizer@optim.d=rmsprop"]))
    assert isinstance(parts.opt_G, torch.optim.Adam)
    assert isinstance(parts.opt_D, torch.optim.RMSprop)


@pytest.mark.parametrize(
    ("optim", "fused_g", "fused_d"),
    [
        ("adam", True, True),
        ("extra_adam", True, True),
        ("sgd_clip", True, True),
        ("rmsprop", None, None),
        ("adam optimizer@optim.d=rmsprop", True, None),
    ],
)
def test_trainer_fused_picks_the_fused_kernels_where_torch_has_them(optim, fused_g, fused_d):
    optim, *more = optim.split()
    plain = build(compose_config([f"optim={optim}", *more]))
    fused = build(compose_config([f"optim={optim}", *more, "trainer.fused=true"]))
    assert not plain.opt_G.param_groups[0].get("fused")  # off by default: results reproduce
    assert plain.opt_G.param_groups[0]["foreach"] is False  # over one buffer: the plain loop
    separate = build(compose_config([f"optim={optim}", *more, "trainer.flat_params=false"]))
    assert separate.opt_G.param_groups[0]["foreach"] is True  # the same bits in fewer calls
    assert fused.opt_G.param_groups[0].get("fused") == fused_g
    assert fused.opt_D.param_groups[0].get("fused") == fused_d
    assert type(fused.opt_G) is type(plain.opt_G)


def test_threads_auto_keeps_torchs_own_count_and_a_number_sets_it():
    """auto leaves torch's count (one per core, or OMP_NUM_THREADS, which torchrun and the
    joblib launcher set); trainer.threads=N sets N."""
    try:
        torch.set_num_threads(3)
        build(compose_config(["trainer.device=cpu"]))
        assert torch.get_num_threads() == 3
        build(compose_config(["trainer.device=cpu", "trainer.threads=2"]))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)  # the suite's one thread per process


def test_flush_denormal_is_ignored_with_a_line_where_the_cpu_cannot_flush(monkeypatch, caplog):
    monkeypatch.setattr(torch, "set_flush_denormal", lambda mode: False)
    caplog.set_level("INFO", logger="ganopt")
    parts = build(compose_config(["trainer.flush_denormal=true"]))
    assert parts.settings.flush_denormal is False
    assert "this CPU cannot flush subnormals, so it is ignored" in caplog.text


def test_an_optimizers_own_fused_setting_wins_over_trainer_fused():
    parts = build(compose_config(["optim=adam", "trainer.fused=true", "+optim.d.fused=false"]))
    assert parts.opt_G.param_groups[0]["fused"] is True
    assert parts.opt_D.param_groups[0]["fused"] is False
    assert parts.opt_D.param_groups[0]["foreach"] is None  # the config's choice is torch's


def test_an_optimizers_own_foreach_setting_wins_and_rmsprop_runs_foreach_when_fused():
    overrides = ["optim=rmsprop", "trainer.fused=true", "+optim.d.foreach=true"]
    parts = build(compose_config(overrides))
    assert parts.opt_G.param_groups[0]["foreach"] is False  # no fused kernel: one buffer's loop
    assert parts.opt_D.param_groups[0]["foreach"] is True
    separate = build(compose_config([*overrides, "trainer.flat_params=false"]))
    assert separate.opt_G.param_groups[0]["foreach"] is True  # no fused kernel: foreach instead


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["trainer.steps=0"], "trainer.steps: must be >= 1, got 0"),
        (["trainer.batch_size=0"], "trainer.batch_size: must be >= 1"),
        (["trainer.d_steps=0"], "trainer.d_steps: must be >= 1"),
        (["trainer.log_every=0"], "trainer.log_every: must be >= 1"),
        (["optim.g.lr=0"], "optim.g.lr: must be a finite number > 0"),
        (["optim.d.lr=-1e-4"], "optim.d.lr: must be a finite number > 0"),
        (["optim.d.lr=abc"], "optim.d.lr: must be a finite number > 0, got 'abc'"),
        (["optim.g.lr=inf"], "optim.g.lr: must be finite, got inf"),
        (["optim.clip=0"], "optim.clip: must be a finite number > 0"),
        (["optim=sgd_clip", "optim.clip=-0.01"], "optim.clip: must be a finite number > 0"),
        (["model.z_dim=0"], "model.z_dim: must be an int >= 1"),
        (["trainer.device=tpu"], "trainer.device: unknown device 'tpu'"),
        (["model.g.hidden=[]"], "model.g:"),
        (["trainer.hist_every=-1"], "trainer.hist_every: must be >= 0"),
        (["trainer.amp=fp8"], "trainer.amp: must be none or bf16"),
        (["trainer.ema_decay=1.5"], "trainer.ema_decay: must be in (0, 1) or null"),
        (["diagnostics.vanishing_ratio=2"], "diagnostics.vanishing_ratio: must be in (0, 1)"),
        (["diagnostics.exploding_ratio=0.5"], "diagnostics.exploding_ratio: must be > 1"),
    ],
)
def test_out_of_range_values_are_rejected_naming_the_key(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        build(compose_config(overrides))


def test_all_problems_are_reported_at_once():
    with pytest.raises(ConfigError) as info:
        build(compose_config(["trainer.steps=0", "trainer.batch_size=0", "optim.g.lr=-1"]))
    assert len(info.value.problems) == 3


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_without_cuda_is_rejected(device):
    with pytest.raises(ConfigError, match=f"trainer.device: '{device}' requested but CUDA"):
        build(compose_config([f"trainer.device={device}"]))


def test_auto_device_picks_cuda_only_when_available():
    parts = build(compose_config(["trainer.device=auto"]))
    assert parts.device.type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("trainer.steps=abc", "trainer.steps"),
        ("trainer.batch_size=1.5", "trainer.batch_size"),
        ("optim.clip=abc", "optim.clip"),
        ("trainer.compile=2", "trainer.compile"),  # OmegaConf alone reads any int as true
        ("trainer.progress=-1", "trainer.progress"),
        ("trainer.steps=true", "trainer.steps"),
        ("trainer.steps=10,true", "trainer.steps"),  # each value of a sweep
    ],
)
def test_wrong_types_fail_at_composition_naming_the_key(override, key):
    with pytest.raises(ConfigError) as info:
        compose_config([override])
    assert str(info.value).startswith(f"invalid config: {key}") or f"full_key: {key}" in str(
        info.value
    )
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.stpes=10", "trainer.stpes: unknown key (did you mean trainer.steps or"),
        ("optim.lr=0.1", "optim.lr: unknown key (did you mean optim.g.lr or optim.d.lr?)"),
        ("model.g.hiden=[8]", "model.g.hiden: unknown key (did you mean model.g.hidden or"),
        ("los=wgan", "los: unknown key (did you mean loss?)"),
        ("trainer.zzz=1", "trainer.zzz: unknown key"),
    ],
)
def test_an_unknown_key_names_the_nearest_real_ones(override, message):
    with pytest.raises(ConfigError) as info:
        compose_config([override])
    assert str(info.value) == f"invalid config: {message}" or message in str(info.value)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "data.path=~/faces",
            """for the shell: 'data.path="~/faces"' or data.path=$HOME/faces""",
        ),
        ("trainer.steps", "trainer.steps: not an override; write key=value"),
    ],
)
def test_an_override_the_grammar_rejects_says_how_to_write_it(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        compose_config([override])
    assert compose_config(["data=folder", 'data.path="~/faces"']).data.path == "~/faces"


def test_unknown_group_option_lists_the_choices():
    with pytest.raises(ConfigError, match="loss=foo: no such option; choose from") as info:
        compose_config(["loss=foo"])
    assert "nonsaturating" in str(info.value)
    assert "wgan" in str(info.value)


@pytest.mark.parametrize(("data", "shadow"), [("ring8", True), ("swissroll", True)])
def test_shadow_losses_are_on_for_toy_data_and_exclude_the_trained_loss(data, shadow):
    parts = build(compose_config([f"data={data}", "loss=standard"]))
    relativistic = {"rsgan", "rasgan", "ralsgan"}
    assert set(parts.diagnostics.shadow_losses) == {"nonsaturating", "wgan", "lsgan", *relativistic}
    hinge = build(compose_config([f"data={data}", "loss=hinge"]))
    assert set(hinge.diagnostics.shadow_losses) == {
        *("standard", "nonsaturating", "lsgan"),
        *relativistic,
    }
    rasgan = build(compose_config([f"data={data}", "loss=rasgan"]))
    assert set(rasgan.diagnostics.shadow_losses) == {
        *("standard", "nonsaturating", "wgan", "lsgan"),
        *("rsgan", "ralsgan"),
    }
    off = build(compose_config([f"data={data}", "diagnostics.shadow=false"]))
    assert off.diagnostics.shadow_losses == {}


def test_vanishing_experiment_preset():
    cfg = compose_config(["experiment=vanishing"])
    assert cfg.loss.name == "standard"
    assert cfg.trainer.d_steps == 5
    assert cfg.optim.d.lr == 1e-3
    assert cfg.optim.g.lr == 1e-5


def test_paper_presets_hold_the_papers_settings():
    dcgan = compose_config(["experiment=dcgan_paper"])
    assert dcgan.model.g.name == "dcgan"
    assert dcgan.optim.g.lr == dcgan.optim.d.lr == 2e-4
    assert list(dcgan.optim.d.betas) == [0.5, 0.999]
    assert dcgan.trainer.batch_size == 128

    wgan = compose_config(["experiment=wgan_paper"])
    assert wgan.loss.name == "wgan"
    assert wgan.optim.d.name == "rmsprop"
    assert wgan.optim.d.lr == 5e-5
    assert wgan.optim.clip == 0.01
    assert (wgan.trainer.d_steps, wgan.trainer.batch_size) == (5, 64)

    article = build(compose_config(["experiment=seed_article"]))
    assert isinstance(article.opt_G, torch.optim.SGD)
    assert isinstance(article.opt_D, torch.optim.SGD)
    assert article.clipper.bound == 0.01
    assert article.G.z_dim == 100
    assert [m.out_features for m in article.G if isinstance(m, torch.nn.Linear)] == [20, 2]
    assert article.settings.batch_size == 128
    assert article.loss.name == "standard"


@pytest.mark.parametrize(
    "override",
    ["loss=[8,8]", "loss=[]", "loss=null", "loss=5", "loss=wgan,5", "optimizer@optim.d=[1]"],
)
def test_a_group_given_anything_but_an_option_name_is_refused_by_name(override):
    """Hydra itself fails on these with a bare TypeError/ValueError and a traceback
    (found by the hostile-input test)."""
    with pytest.raises(ConfigError, match="takes one option by name"):
        check_group_overrides([override])


def test_group_options_sweeps_and_plain_keys_pass_the_group_check():
    check_group_overrides(["loss=wgan", "loss=standard,wgan", "trainer.steps=[1]", "+x=[2]"])
