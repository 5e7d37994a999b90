"""``anywidth info`` on users' own models (needs the ``models`` extra)."""

from anywidth.cli.main import main


def test_info_shows_a_timm_models_groups_and_what_is_fixed(capsys):
    assert main(["info", "--timm", "mobilenetv2_100", "--input-size", "64"]) == 0
    out = capsys.readouterr().out
    assert "timm:mobilenetv2_100: EfficientNet" in out
    assert "| blocks.1.0.conv_pw:out" in out and "resizable" in out
    assert "| classifier:out          | 1000     | fixed: model output" in out
    assert "25 of 27 groups resizable" in out  # timm's BatchNormAct2d norms are understood


def test_info_says_why_a_group_is_fixed(capsys):
    # a cumulative sum over channels has no channel rule: the group it reads is fixed
    spec = "tests.cli._models:channel_cumsum"
    assert main(["info", "--model-spec", spec, "--input-size", "8"]) == 0
    out = capsys.readouterr().out
    assert "| conv1:out     | 8        | fixed: node 'cumsum' (torch.cumsum): no channel" in out
    assert "| conv2:out     | 16       | resizable" in out
    assert "register_layer" in out


def test_info_refuses_two_models(capsys):
    assert main(["info", "--timm", "resnet18", "--torchvision", "resnet18"]) == 2
    assert "name one model, got timm:resnet18, torchvision:resnet18" in capsys.readouterr().err
    assert main(["info", "resnet20", "--timm", "resnet18"]) == 2
