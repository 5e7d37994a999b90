"""Every config round-trips through a versioned dict and refuses unknown keys by name."""

import json

import pytest

import anywidth
from anywidth import Budget
from anywidth._config import CONFIG_VERSION, check_keys
from anywidth.integral import IntegralConfig
from anywidth.integral.training import WidthTrainConfig
from anywidth.integral.tuning import TuneConfig
from anywidth.lowrank import LowRankConfig
from anywidth.measure import Report
from anywidth.pruning import PruneConfig
from anywidth.search import DistillConfig, SearchConfig
from anywidth.slim import ShrinkConfig
from anywidth.train import TrainConfig
from studies.channel_search import ChannelSearchConfig
from studies.rank_study import RankStudyConfig

# (config, a misspelt key, the field it should suggest)
CONFIGS = [
    (TrainConfig(epochs=3, lr=0.05, grad_clip=1.0), "lr_max", "lr"),
    (IntegralConfig(rule="simpson", nodes={"a:out": 3}, fixed=("b*",)), "rules", "rule"),
    (PruneConfig(target_macs=0.5, fixed=("layer3.*",), round_to=2), "target_mac", "target_macs"),
    (WidthTrainConfig(min_ratio=0.5, random_plans=2), "min_ration", "min_ratio"),
    (TuneConfig(steps=7, tune_bn=False), "step", "steps"),
    (RankStudyConfig(kinds=("conv1x1",), networks=3, rtol=1e-2), "network", "networks"),
    (ChannelSearchConfig(candidates=("linear",), epochs=2, seeds=(1,)), "epoch", "epochs"),
    (LowRankConfig(budget=Budget(params=0.5), fixed=("fc",)), "fixd", "fixed"),
    (SearchConfig(budget=Budget(macs=0.5), epochs=2, depth=False), "dept", "depth"),
    (DistillConfig(temperature=2.0), "temprature", "temperature"),
    (ShrinkConfig(budget=Budget(macs=0.25), tune_steps=3, loss="l1"), "tune_step", "tune_steps"),
    (ShrinkConfig(ratio=0.5, allocation="global"), "alocation", "allocation"),
]
IDS = [f"{type(c[0]).__name__}-{c[1]}" for c in CONFIGS]


@pytest.mark.parametrize("config, typo, field", CONFIGS, ids=IDS)
def test_round_trips_through_json_with_a_version(config, typo, field):
    data = json.loads(json.dumps(config.to_dict()))
    assert data["version"] == CONFIG_VERSION == 1
    assert type(config).from_dict(data) == config


@pytest.mark.parametrize("config, typo, field", CONFIGS, ids=IDS)
def test_every_config_takes_to_dict_and_from_dict_from_the_one_base(config, typo, field):
    assert isinstance(config, anywidth.Config)
    assert "to_dict" not in vars(type(config)) and "from_dict" not in vars(type(config))


@pytest.mark.parametrize("config, typo, field", CONFIGS, ids=IDS)
def test_record_without_version_reads_as_version_1(config, typo, field):
    data = config.to_dict()
    del data["version"]  # written before records carried one
    assert type(config).from_dict(data) == config


@pytest.mark.parametrize("config, typo, field", CONFIGS, ids=IDS)
def test_unknown_key_is_named_with_suggestion_and_valid_keys(config, typo, field):
    kind = type(config).__name__
    data = dict(config.to_dict(), **{typo: 1})
    with pytest.raises(ValueError) as error:
        type(config).from_dict(data)
    message = str(error.value)
    assert message.startswith(f"unknown {kind} field {typo!r} (did you mean {field!r}?)")
    assert "valid fields: " in message
    for name in config.to_dict():
        assert name in message.split("valid fields: ")[1]


@pytest.mark.parametrize("config, typo, field", CONFIGS, ids=IDS)
def test_newer_version_is_refused(config, typo, field):
    kind = type(config).__name__
    data = dict(config.to_dict(), version=CONFIG_VERSION + 1)
    with pytest.raises(ValueError, match=rf"{kind} record version 2 is newer .*upgrade anywidth"):
        type(config).from_dict(data)


@pytest.mark.parametrize("version", [0, "1", 1.0, True, None])
def test_malformed_version_is_refused(version):
    data = dict(TrainConfig().to_dict(), version=version)
    with pytest.raises(ValueError, match=r"TrainConfig record version must be a positive int"):
        TrainConfig.from_dict(data)


def test_several_unknown_keys_are_all_named():
    with pytest.raises(ValueError) as error:
        check_keys("TuneConfig", {"zzz": 2, "lrr": 1}, ["steps", "lr"])
    assert str(error.value) == (
        "unknown TuneConfig fields 'lrr' (did you mean 'lr'?), 'zzz'; valid fields: lr, steps"
    )


def test_report_refuses_unknown_keys():
    report = Report("m", params=10, macs=20, latency_ms=1.0, threads=1, batch_size=1)
    assert Report.from_dict(report.to_dict()) == report
    with pytest.raises(ValueError, match=r"unknown Report field 'acc' \(did you mean"):
        Report.from_dict(dict(report.to_dict(), acc=0.5))


def test_no_config_class_in_the_package_writes_its_own_to_dict_or_from_dict():
    import ast
    from pathlib import Path

    root = Path(anywidth.__file__).parent
    own = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Config") != (
                node.name == "Config"
            ):
                names = {f.name for f in node.body if isinstance(f, ast.FunctionDef)}
                if names & {"to_dict", "from_dict"}:
                    own.append(f"{path.relative_to(root)}:{node.name}")
    assert own == []
    assert len([p for p in root.rglob("*.py")]) > 50  # the walk saw the package
