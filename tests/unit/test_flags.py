import pytest

from seaweed_py.config.flags import Duration, FlagSet, HelpRequested, UsageError


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


@pytest.mark.parametrize(
    ("text", "seconds", "shown"),
    [
        ("1m0s", 60.0, "1m0s"),
        ("60s", 60.0, "1m0s"),
        ("1.5h", 5400.0, "1h30m0s"),
        ("1h2m3.5s", 3723.5, "1h2m3.5s"),
        ("300ms", 0.3, "300ms"),
        (".5s", 0.5, "500ms"),
        ("2us", 2e-6, "2\u00b5s"),
        ("2\u00b5s", 2e-6, "2\u00b5s"),
        ("7ns", 7e-9, "7ns"),
        ("0", 0.0, "0s"),
        ("+3s", 3.0, "3s"),
        ("-2s", -2.0, "-2s"),
    ],
)
def test_durations_parse_and_show_as_go_does(text: str, seconds: float, shown: str) -> None:
    value = Duration(text)
    assert float(value) == pytest.approx(seconds) and repr(value) == str(value) == shown


@pytest.mark.parametrize(
    "text", ["", "5", "s", "-", "1d", "1s ", " 1s", "1 s", "1.s2", "1e3s", "++1s", "99999999999h"]
)
def test_malformed_durations_are_usage_errors(text: str) -> None:
    fs = FlagSet("volume", "start a volume server")
    fs.add("timeout", Duration("1m0s"), "how long")
    assert fs.parse([])[0]["timeout"] == 60.0
    with pytest.raises(UsageError, match="-timeout"):
        fs.parse([f"-timeout={text}"])
