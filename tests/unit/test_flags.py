import pytest

from seaweed_py.config.flags import FlagSet, HelpRequested, UsageError


def _flags() -> FlagSet:
    fs = FlagSet("master", "start a master")
    fs.add("port", 9333, "http listen port")
    fs.add("ip", "localhost", "ip address to bind to")
    fs.add("largeDisk", False, "5-byte offsets")
    return fs


@pytest.mark.parametrize(
    "argv",
    [["-port=9444"], ["-port", "9444"], ["--port", "9444"], ["--port=9444"]],
)
def test_every_go_spelling_sets_the_flag(argv: list[str]) -> None:
    values, rest = _flags().parse(argv)
    assert values["port"] == 9444
    assert rest == []


def test_defaults_apply_when_flag_absent() -> None:
    values, _ = _flags().parse([])
    assert values == {"port": 9333, "ip": "localhost", "largeDisk": False}


def test_bool_flag_alone_means_true_and_can_be_turned_off() -> None:
    assert _flags().parse(["-largeDisk"])[0]["largeDisk"] is True
    assert _flags().parse(["-largeDisk=false"])[0]["largeDisk"] is False


def test_positionals_are_kept_in_order() -> None:
    values, rest = _flags().parse(["a.txt", "-ip=1.2.3.4", "b.txt", "--", "-c"])
    assert values["ip"] == "1.2.3.4"
    assert rest == ["a.txt", "b.txt", "-c"]


def test_unknown_flag_and_bad_value_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="not defined: -nope"):
        _flags().parse(["-nope=1"])
    with pytest.raises(UsageError, match="want int"):
        _flags().parse(["-port=abc"])
    # Python's int() takes each of these (Arabic-Indic digits, blanks); Go's flag package not.
    for junk in ("\u0668\u0660\u0668\u0660", " 8080", "8080\n"):
        with pytest.raises(UsageError, match="want int"):
            _flags().parse([f"-port={junk}"])
    with pytest.raises(UsageError, match="needs an argument"):
        _flags().parse(["-port"])


def test_help_lists_every_flag_with_its_default() -> None:
    with pytest.raises(HelpRequested) as info:
        _flags().parse(["-h"])
    text = str(info.value)
    assert "-port int" in text and "(default 9333)" in text and "-largeDisk" in text
