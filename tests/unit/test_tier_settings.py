"""S3 settings of a volume server: WEEDPY_S3_*, AWS_* fallbacks, master.toml (tiering spec §1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from seaweed_py.errors import BackendNotFound, BadRequest
from seaweed_py.storage.backend import Backends, backend_name
from seaweed_py.storage.backend.settings import BackendConfigError, BackendSource

SECRET = "sekrit-0123456789abcdef"


def load(env: dict[str, str], toml: str | None = None, tmp: Path | None = None) -> dict:  # type: ignore[type-arg]
    config_dir = ""
    if toml is not None:
        assert tmp is not None
        (tmp / "master.toml").write_text(toml)
        config_dir = str(tmp)
    return BackendSource(config_dir=config_dir, env=env, search_dirs=()).load()


def table(ident: str = "default", **keys: object) -> str:
    lines = [f"[storage.backend.s3.{ident}]"]
    for k, v in {"enabled": True, "bucket": "b1", **keys}.items():
        lines.append(f"{k} = {str(v).lower() if isinstance(v, bool) else repr(v)}")
    return "\n".join(lines) + "\n"


def test_nothing_configured_is_no_backend() -> None:
    assert load({}) == {}
    assert load({"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}) == {}


def test_environment_defines_s3_default() -> None:
    found = load(
        {
            "WEEDPY_S3_BUCKET": "blobs",
            "WEEDPY_S3_ENDPOINT": "http://127.0.0.1:9000/",
            "WEEDPY_S3_ACCESS_KEY": "ak",
            "WEEDPY_S3_SECRET_KEY": SECRET,
            "WEEDPY_S3_REGION": "eu-west-3",
            "WEEDPY_S3_PREFIX": "/weedpy/tier",
        }
    )
    s = found["s3.default"]
    assert (s.bucket, s.endpoint, s.region, s.access_key, s.prefix) == (
        "blobs",
        "http://127.0.0.1:9000",
        "eu-west-3",
        "ak",
        "weedpy/tier/",
    )
    assert s.secret_key == SECRET
    assert SECRET not in repr(s) and SECRET not in s.describe()


def test_aws_variables_fill_what_weedpy_ones_leave() -> None:
    s = load(
        {
            "WEEDPY_S3_BUCKET": "blobs",
            "AWS_ACCESS_KEY_ID": "ak",
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_DEFAULT_REGION": "ap-south-1",
            "AWS_ENDPOINT_URL": "https://s3.example.test",
        }
    )["s3.default"]
    assert (s.access_key, s.secret_key, s.region, s.endpoint) == (
        "ak",
        SECRET,
        "ap-south-1",
        "https://s3.example.test",
    )
    # WEEDPY_S3_* win over AWS_*.
    s = load(
        {
            "WEEDPY_S3_BUCKET": "blobs",
            "WEEDPY_S3_REGION": "us-west-1",
            "AWS_REGION": "ap-south-1",
            "AWS_ENDPOINT_URL_S3": "http://a.test",
            "AWS_ENDPOINT_URL": "http://b.test",
        }
    )["s3.default"]
    assert (s.region, s.endpoint) == ("us-west-1", "http://a.test")


def test_master_toml_as_weed_users_write_it(tmp_path: Path) -> None:
    toml = (
        "[master.maintenance]\nscripts = 'x'\n[storage.backend]\n"
        + table(aws_access_key_id="ak", aws_secret_access_key=SECRET, endpoint="http://h:1")
        + table("cold", bucket="c2", storage_class="GLACIER")
        + table("off", enabled=False)
    )
    found = load({}, toml, tmp_path)
    assert sorted(found) == ["s3.cold", "s3.default"]
    assert found["s3.default"].storage_class == "STANDARD_IA"
    assert found["s3.cold"].storage_class == "GLACIER"
    assert found["s3.default"].source == str(tmp_path / "master.toml")


def test_weed_variables_override_the_file_and_weedpy_ones_win(tmp_path: Path) -> None:
    toml = table(aws_access_key_id="ak", aws_secret_access_key="old", bucket="b1")
    env = {"WEED_STORAGE_BACKEND_S3_DEFAULT_AWS_SECRET_ACCESS_KEY": SECRET}
    assert load(env, toml, tmp_path)["s3.default"].secret_key == SECRET
    env = {"WEEDPY_S3_BUCKET": "b2", "WEEDPY_S3_REGION": "r9"}
    s = load(env, toml, tmp_path)["s3.default"]
    assert (s.bucket, s.region, s.access_key, s.secret_key) == ("b2", "r9", "ak", "old")


@pytest.mark.parametrize(
    ("env", "toml", "says"),
    [
        ({"WEEDPY_S3_ENDPOINT": "http://h:1"}, None, "WEEDPY_S3_BUCKET is not"),
        ({"WEEDPY_S3_BUCKET": "bkt", "WEEDPY_S3_ENDPOINT": "ftp://h"}, None, "not an http"),
        ({"WEEDPY_S3_BUCKET": "bkt", "WEEDPY_S3_ENDPOINT": "http://h:99999"}, None, "bad port"),
        ({"WEEDPY_S3_BUCKET": "bkt", "WEEDPY_S3_ACCESS_KEY": "a"}, None, "without its secret"),
        ({"WEEDPY_S3_BUCKET": "bkt", "WEEDPY_S3_SECRET_KEY": SECRET}, None, "without its access"),
        ({"WEEDPY_S3_BUCKET": "no/slash"}, None, "not a bucket name"),
        ({"WEEDPY_S3_BUCKET": "bkt", "WEEDPY_S3_PREFIX": "a//b"}, None, "not a key prefix"),
        ({}, "[storage.backend.s3.default]\nenabled = true\n", "names no bucket"),
        ({}, "[storage.backend.rclone.x]\nenabled = true\n", "only s3"),
        ({}, table(bukcet="typo"), "unknown key bukcet"),
        ({}, table(enabled="maybe"), "must be true or false"),
        ({}, "[storage.backend.s3.default\n", "not valid TOML"),
    ],
)
def test_unusable_settings_are_one_line_without_secrets(
    tmp_path: Path, env: dict[str, str], toml: str | None, says: str
) -> None:
    with pytest.raises(BackendConfigError) as caught:
        load(env, toml, tmp_path)
    message = str(caught.value)
    assert says in message and "\n" not in message and SECRET not in message


def test_backend_names() -> None:
    assert backend_name("s3") == "s3.default"
    assert backend_name("s3.cold") == "s3.cold"
    for bad in ("", "s3.a.b", "gcs", "s3.", "s3.a b"):
        with pytest.raises(ValueError):
            backend_name(bad)


def test_unknown_destination_names_the_configured_ones() -> None:
    with pytest.raises(BackendNotFound, match=r"no S3 backend is configured.*WEEDPY_S3_BUCKET"):
        Backends({}).get("s3")
    found = load({"WEEDPY_S3_BUCKET": "bkt"})
    with pytest.raises(BackendNotFound, match=r"s3\.cold not found, configured: s3\.default"):
        Backends(found).get("s3.cold")
    with pytest.raises(BadRequest):
        Backends(found).get("s3.x.y")
    assert Backends(found).get("s3").name == "s3.default"
