from seaweed_py import errors


def test_every_error_knows_its_status_and_renders_context() -> None:
    exc = errors.CorruptNeedle("crc mismatch", volume_id=7, offset=81920)
    assert exc.status == 500
    assert exc.body() == {"error": "crc mismatch (volume_id=7, offset=81920)"}


def test_extra_fields_and_headers_travel_with_the_error() -> None:
    exc = errors.VolumeNotFound(
        "volume id 9 not found", extra={"volumeOrFileId": "9"}, headers={"Retry-After": "1"}
    )
    assert exc.status == 404
    assert exc.body() == {"volumeOrFileId": "9", "error": "volume id 9 not found"}
    assert exc.headers == {"Retry-After": "1"}


def test_all_exported_names_are_weed_errors() -> None:
    for name in errors.__all__:
        if name != "error_for_status":  # the one function: the tree read by status
            assert issubclass(getattr(errors, name), errors.WeedError)


def test_error_for_status_gives_the_general_class_of_a_status() -> None:
    assert errors.error_for_status(400) is errors.BadRequest
    assert errors.error_for_status(413) is errors.PayloadTooLarge
    assert errors.error_for_status(503) is errors.ServiceUnavailable
    assert errors.error_for_status(418) is errors.WeedError
    for status in (400, 401, 404, 405, 406, 408, 409, 413, 414, 416, 417, 431, 503):
        assert errors.error_for_status(status).status == status


def test_a_startup_error_is_one_line_naming_the_flag() -> None:
    exc = errors.DirectoryUnusable("dir", "/x/y", "no such directory")
    assert str(exc) == "-dir /x/y: no such directory"
    exc.flag = "volume.dir"  # as `weedpy server` names it
    assert str(exc) == "-volume.dir /x/y: no such directory"
    assert (exc.setting, exc.value) == ("dir", "/x/y")


def test_a_context_value_left_none_is_not_named() -> None:
    exc = errors.CorruptVolume("bad", volume_id=None, offset=8)
    assert exc.message == "bad (offset=8)" and exc.context == {"offset": 8}
