"""bot/authenticity.py's rules, each on its own, on plain events (no bolt, no I/O): what is a
Slack signature, how fresh a request must be, which bodies bolt can read, which credentials are
usable, and how our lazy self-invocations are signed. The e2e tests show the same rules through
the handler (tests/e2e/test_bot_authenticity.py, tests/e2e/test_bot_unconfigured.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from bot import authenticity as a

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"  # 32 characters, not a placeholder
NOW = 1_700_000_000


def _sign(body: str, timestamp: int | str, secret: str = SECRET) -> str:
    return "v0=" + hmac.new(secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256).hexdigest()


def _event(body: str = "text=help", *, timestamp: int | str = NOW, signature: str | None = None, **extra) -> dict:
    headers = {
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": _sign(body, timestamp) if signature is None else signature,
        "Content-Type": "application/x-www-form-urlencoded",
    }
    headers.update(extra.pop("headers", {}))
    event = {"headers": headers, "body": body, "isBase64Encoded": False, "cookies": [], "queryStringParameters": None}
    event.update(extra)
    return event


# --- Slack's signature -------------------------------------------------------------------------


def test_a_request_signed_with_the_secret_now_is_accepted():
    assert a.refusal(_event(), SECRET, NOW) is None


def test_the_signature_must_be_slacks_v0_hmac_of_timestamp_and_body():
    assert a.refusal(_event(signature=_sign("text=other", NOW)), SECRET, NOW) == "bad signature"
    assert a.refusal(_event(signature=_sign("text=help", NOW + 1)), SECRET, NOW) == "bad signature"
    assert a.refusal(_event(signature=_sign("text=help", NOW, secret=SECRET + "x")), SECRET, NOW) == "bad signature"
    assert a.refusal(_event(signature=_sign("text=help", NOW)[3:]), SECRET, NOW) == "bad signature"  # no "v0="


def test_no_secret_or_a_non_ascii_signature_is_a_bad_signature_not_an_exception():
    assert a.refusal(_event(), "", NOW) == "bad signature"
    assert a.refusal(_event(signature="v0=é"), SECRET, NOW) == "bad signature"


def test_a_request_without_timestamp_or_signature_is_unsigned():
    assert a.refusal(_event(timestamp=""), SECRET, NOW) == "unsigned"
    assert a.refusal(_event(signature=""), SECRET, NOW) == "unsigned"
    bare = _event()
    del bare["headers"]["X-Slack-Signature"]
    assert a.refusal(bare, SECRET, NOW) == "unsigned"


def test_header_names_are_case_insensitive():
    event = _event()
    event["headers"] = {k.upper(): v for k, v in event["headers"].items()}
    assert a.refusal(event, SECRET, NOW) is None


# --- freshness ---------------------------------------------------------------------------------


def test_a_request_up_to_five_minutes_old_or_early_is_fresh_one_second_more_is_stale():
    assert a.refusal(_event(timestamp=NOW - 300), SECRET, NOW) is None
    assert a.refusal(_event(timestamp=NOW + 300), SECRET, NOW) is None
    assert a.refusal(_event(timestamp=NOW - 301), SECRET, NOW) == "stale timestamp"
    assert a.refusal(_event(timestamp=NOW + 301), SECRET, NOW) == "stale timestamp"


@pytest.mark.parametrize("timestamp", ["1e9", "-1", " 1700000000", "１７００００００００", "1234567890123"])
def test_a_timestamp_must_be_at_most_twelve_ascii_digits(timestamp):
    assert a.refusal(_event(timestamp=timestamp), SECRET, NOW) == "timestamp is not a number"


def test_twelve_digits_is_still_a_number_just_a_stale_one():
    assert a.refusal(_event(timestamp="999999999999"), SECRET, NOW) == "stale timestamp"


def test_unsigned_refusal_checks_everything_but_the_signature():
    assert a.unsigned_refusal(_event(signature="v0=anything"), NOW) is None
    assert a.unsigned_refusal(_event(timestamp=NOW - 301), NOW) == "stale timestamp"
    assert a.unsigned_refusal(_event(signature=""), NOW) == "unsigned"
    assert a.unsigned_refusal("not a mapping", NOW) == "not an event"


def test_a_request_claiming_to_be_lazy_may_be_old_before_its_own_hmac_is_checked():
    old = _event(timestamp=NOW - 3600, headers={a.LAZY_ONLY_HEADER: "1"})
    assert a.unsigned_refusal(old, NOW) is None
    assert a.unsigned_refusal(_event(timestamp=NOW - 3600, headers={a.LAZY_SIGNATURE_HEADER: "v1=x"}), NOW) is None


# --- the event's shape -------------------------------------------------------------------------


def test_an_event_that_is_not_a_mapping_or_has_no_usable_headers_is_refused():
    assert a.refusal(["not", "an", "event"], SECRET, NOW) == "not an event"
    assert a.refusal({"body": "x"}, SECRET, NOW) == "no headers"
    assert a.refusal(_event(headers={"x-extra": 1}), SECRET, NOW) == "no headers"
    assert a.refusal(_event(headers={"x-extra": ["a", 2]}), SECRET, NOW) == "no headers"
    event = _event()
    event["headers"][3] = "x"
    assert a.refusal(event, SECRET, NOW) == "no headers"


def test_a_header_given_as_a_list_counts_as_its_first_value_and_an_empty_list_as_empty():
    event = _event()
    event["headers"]["X-Slack-Signature"] = [event["headers"]["X-Slack-Signature"], "v0=other"]
    assert a.refusal(event, SECRET, NOW) is None
    event["headers"]["X-Slack-Signature"] = []
    assert a.refusal(event, SECRET, NOW) == "unsigned"


NOT_A_URL_EVENT = "not a Function URL event with a UTF-8 text body"


@pytest.mark.parametrize(
    "change",
    [
        {"body": b"text=help"},
        {"isBase64Encoded": "false"},
        {"isBase64Encoded": None},
        {"cookies": "a=b"},
        {"queryStringParameters": ["a"]},
    ],
)
def test_a_body_cookies_or_query_of_the_wrong_type_is_not_a_function_url_event(change):
    assert a.refusal(_event(**change), SECRET, NOW) == NOT_A_URL_EVENT


def test_a_missing_body_is_the_empty_body_and_absent_cookies_and_query_are_fine():
    event = _event("")
    del event["body"]
    event["cookies"] = None
    event["queryStringParameters"] = {"a": "b"}
    assert a.refusal(event, SECRET, NOW) is None


def test_a_base64_body_is_decoded_before_its_signature_is_checked():
    body = 'payload={"type":"block_actions"}'
    event = _event(body, isBase64Encoded=True)
    event["body"] = base64.b64encode(body.encode()).decode()
    assert a.refusal(event, SECRET, NOW) is None
    event["isBase64Encoded"] = False  # the same text read as it is: not what was signed
    assert a.refusal(event, SECRET, NOW) == "bad signature"


def test_a_base64_body_that_is_not_base64_or_not_utf8_is_refused():
    assert a.refusal(_event(body="@@not base64@@", isBase64Encoded=True), SECRET, NOW) == NOT_A_URL_EVENT
    latin = base64.b64encode("é".encode("latin-1")).decode()
    assert a.refusal(_event(body=latin, isBase64Encoded=True), SECRET, NOW) == NOT_A_URL_EVENT


def test_a_body_with_a_lone_surrogate_is_refused():
    body = "text=\ud800"
    assert a.refusal(_event(body, signature="v0=x"), SECRET, NOW) == NOT_A_URL_EVENT


# --- bodies bolt can read ----------------------------------------------------------------------


def _signed(body: str, content_type: str = "application/x-www-form-urlencoded") -> dict:
    return _event(body, headers={"Content-Type": content_type})


def test_a_json_body_must_be_an_object_by_content_type_or_by_its_first_character():
    assert a.refusal(_signed('{"a": 1}', "application/json"), SECRET, NOW) is None
    assert a.refusal(_signed("[1]", "application/json; charset=utf-8"), SECRET, NOW) == "body is not a JSON object"
    assert a.refusal(_signed("{not json"), SECRET, NOW) == "body is not a JSON object"
    assert a.refusal(_signed("[1]"), SECRET, NOW) is None  # a form to bolt (a strange one)


def test_a_form_payload_must_be_a_json_object_when_present():
    assert a.refusal(_signed('payload={"type":"x"}'), SECRET, NOW) is None
    for bad in ("payload=null", "payload=%7Bnot", "payload=", "a=1&payload=[]"):
        assert a.refusal(_signed(bad), SECRET, NOW) == "payload is not a JSON object", bad
    assert a.refusal(_signed("text=the+payload+word"), SECRET, NOW) is None  # no payload field
    assert a.refusal(_signed(""), SECRET, NOW) is None


def test_json_nested_too_deep_is_not_an_object_rather_than_an_exception():
    deep = "[" * 100_000 + "]" * 100_000
    assert a.refusal(_signed("payload=" + deep), SECRET, NOW) == "payload is not a JSON object"


# --- usable credentials ------------------------------------------------------------------------

TOKEN = "xoxb-1234-5678-abcdef"


def test_a_real_secret_and_bot_token_are_usable():
    assert a.unusable_secret(SECRET, TOKEN) is None


@pytest.mark.parametrize(
    ("secret", "why"),
    [
        ("", "the signing secret is empty"),
        ("   ", "the signing secret is empty"),
        ("REPLACE-with-the-real-secret-0123456789", "the signing secret is a placeholder"),
        ("0123456789abcdef0123456789abcdeSecret", "the signing secret is a placeholder"),
        ("0123456789abcdef0123456789abcde", "the signing secret is shorter than 32 characters"),
        (" 0123456789abcdef0123456789abcde ", "the signing secret is shorter than 32 characters"),  # stripped
        ("abcabcabcabcabcabcabcabcabcabcabcabc", "the signing secret is not random"),
        ("0123456" * 5, "the signing secret is not random"),  # seven different characters
    ],
)
def test_an_empty_placeholder_short_or_constant_secret_is_unusable(secret, why):
    assert a.unusable_secret(secret, TOKEN) == why


def test_thirty_two_characters_of_eight_different_ones_are_enough():
    assert a.unusable_secret("01234567" * 4, TOKEN) is None


@pytest.mark.parametrize("token", ["", "xoxp-1234", "XOXB-1234", "xoxb-REPLACE-me", "xoxb-changeme", "xoxb-placeholder"])
def test_a_token_that_is_not_a_real_bot_token_is_unusable(token):
    assert a.unusable_secret(SECRET, token) == "the bot token is not a Slack bot token (xoxb-…)"


def test_a_bot_token_may_contain_words_only_a_secret_must_not():
    assert a.unusable_secret(SECRET, "xoxb-todo-secret-xxxx-example") is None


# --- our lazy self-invocations -----------------------------------------------------------------


def _lazy(timestamp: int = NOW - 3000) -> dict:
    event = _event(timestamp=timestamp, headers={a.LAZY_ONLY_HEADER: "1", a.LAZY_FUNCTION_HEADER: "submit"})
    event["headers"] = {k.lower(): v for k, v in event["headers"].items()}
    return event


def test_is_lazy_when_either_lazy_header_is_there():
    assert a.is_lazy(_lazy()) is True
    assert a.is_lazy(_event(headers={a.LAZY_SIGNATURE_HEADER: "v1=x"})) is True
    assert a.is_lazy(_event()) is False
    assert a.is_lazy({"headers": None}) is False
    assert a.is_lazy("not an event") is False


def test_the_lazy_key_is_derived_from_the_secret_never_the_secret_itself():
    key = a.lazy_key(SECRET)
    assert key == hmac.new(SECRET.encode(), b"trainbot lazy self-invocation v1", hashlib.sha256).digest()
    assert key != SECRET.encode() and key != a.lazy_key(SECRET + "x")


def test_a_signed_lazy_event_is_accepted_however_old():
    key = a.lazy_key(SECRET)
    event = _lazy()
    a.sign_lazy(event, key)
    assert event["headers"][a.LAZY_SIGNATURE_HEADER].startswith("v1=")
    assert a.lazy_refusal(event, key) is None


def test_a_lazy_event_without_or_with_a_wrong_hmac_is_refused():
    key = a.lazy_key(SECRET)
    assert a.lazy_refusal(_lazy(), key) == "bad lazy signature"
    event = _lazy()
    a.sign_lazy(event, a.lazy_key(SECRET + "x"))
    assert a.lazy_refusal(event, key) == "bad lazy signature"
    event["headers"][a.LAZY_SIGNATURE_HEADER] = "v1=é"
    assert a.lazy_refusal(event, key) == "bad lazy signature"


@pytest.mark.parametrize(
    ("where", "name", "value"),
    [
        ("headers", a.LAZY_ONLY_HEADER, "0"),
        ("headers", a.LAZY_FUNCTION_HEADER, "stop"),
        ("headers", "x-slack-request-timestamp", str(NOW - 2999)),
        ("headers", "x-slack-signature", "v0=forged"),
        ("event", "body", "text=other"),
    ],
)
def test_the_lazy_hmac_covers_the_function_the_slack_headers_and_the_body(where, name, value):
    key = a.lazy_key(SECRET)
    event = _lazy()
    a.sign_lazy(event, key)
    (event["headers"] if where == "headers" else event)[name] = value
    assert a.lazy_refusal(event, key) == "bad lazy signature"


def test_the_lazy_hmac_covers_whether_the_body_is_base64():
    key = a.lazy_key(SECRET)
    body = base64.b64encode(b"text=help").decode()
    event = _lazy()
    event.update(body=body)
    a.sign_lazy(event, key)
    event["isBase64Encoded"] = True  # same text, now read as base64
    assert a.lazy_refusal(event, key) == "bad lazy signature"


def test_the_lazy_hmac_is_over_exactly_these_fields():
    key = a.lazy_key(SECRET)
    event = _lazy()
    a.sign_lazy(event, key)
    h = event["headers"]
    signed = [h[a.LAZY_ONLY_HEADER], h[a.LAZY_FUNCTION_HEADER], h["x-slack-request-timestamp"], h["x-slack-signature"], False, "text=help"]
    assert h[a.LAZY_SIGNATURE_HEADER] == "v1=" + hmac.new(key, json.dumps(signed).encode(), hashlib.sha256).hexdigest()


def test_a_lazy_event_must_still_be_signed_shaped_and_readable():
    key = a.lazy_key(SECRET)
    unsigned = _lazy()
    unsigned["headers"]["x-slack-signature"] = ""
    assert a.lazy_refusal(unsigned, key) == "unsigned"
    bad_body = _lazy()
    bad_body["body"] = "payload=null"
    a.sign_lazy(bad_body, key)
    assert a.lazy_refusal(bad_body, key) == "payload is not a JSON object"


def test_the_lazy_hmac_reads_an_absent_field_as_empty():
    """A lazy event signed by one version is checked by the next during a deploy: the bytes the
    HMAC covers are fixed, an absent header or body included (as "", never a placeholder)."""
    key = a.lazy_key(SECRET)
    event: dict = {"headers": {}, "body": None}
    a.sign_lazy(event, key)
    signed = ["", "", "", "", False, ""]
    assert event["headers"][a.LAZY_SIGNATURE_HEADER] == "v1=" + hmac.new(key, json.dumps(signed).encode(), hashlib.sha256).hexdigest()


def test_a_base64_body_must_be_strict_base64_not_what_a_lenient_decoder_would_make_of_it():
    """Characters outside the alphabet are refused, not skipped: what is checked against the
    signature must be the one reading of the body."""
    body = "text=help"
    event = _event(body, isBase64Encoded=True)
    encoded = base64.b64encode(body.encode()).decode()
    event["body"] = encoded[:4] + "!" + encoded[4:]
    assert a.refusal(event, SECRET, NOW) == NOT_A_URL_EVENT


def test_a_signed_request_without_a_content_type_is_read_by_its_body():
    event = _event('{"a": 1}')
    del event["headers"]["Content-Type"]
    assert a.refusal(event, SECRET, NOW) is None
    bad = _event("[1")
    del bad["headers"]["Content-Type"]
    assert a.refusal(bad, SECRET, NOW) is None  # a (strange) form, as bolt reads it
