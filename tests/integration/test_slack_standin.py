"""The Slack stand-in behaves like Slack for the real slack_sdk / slack_bolt clients."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from types import SimpleNamespace
from urllib.parse import parse_qs

import pytest
from slack_bolt import App
from slack_bolt.adapter.aws_lambda.handler import SlackRequestHandler, to_bolt_request
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier

from infra.local.standins.slack import SlackStandIn
from infra.local.standins.slack_signing import (
    block_actions_body,
    lambda_url_event,
    sign,
    signed_headers,
    slash_command_body,
    view_submission_body,
)

TOKEN = "xoxb-local-test"
SECRET = "local-signing-secret"
CHANNEL = "C0TRAIN"


@pytest.fixture
def standin():
    with SlackStandIn(team_id="T0LOCAL", bot_user_id="U0BOT") as s:
        yield s


@pytest.fixture
def client(standin):
    # Real clients retry connection errors by default; keep that, but nothing else.
    return WebClient(token=TOKEN, base_url=standin.api_url, timeout=5)


def test_auth_test_reports_the_configured_team_and_bot(client):
    resp = client.auth_test()
    assert resp["ok"] is True
    assert resp["team"] == "Trainbot Local"
    assert (resp["team_id"], resp["user_id"], resp["bot_id"]) == ("T0LOCAL", "U0BOT", "B0BOT")


def test_a_post_to_a_user_id_lands_in_the_apps_dm_with_that_user_as_slack_documents(standin, client):
    # chat.postMessage: "pass a user ID as channel to post to the app's DM with that user";
    # the answer names the DM's D… channel, where the message can then be updated.
    posted = client.chat_postMessage(channel="U0ADMIN", text="Approval needed")
    im = posted["channel"]

    assert im.startswith("D") and im == standin.im_channel("U0ADMIN") != standin.im_channel("U0YOU")
    info = standin.channel_info(im)
    assert info["is_im"] is True and info["user"] == "U0ADMIN"
    client.chat_update(channel=im, ts=posted["ts"], text="Approved")
    assert [m["text"] for m in standin.messages(im)] == ["Approved"] == [m["text"] for m in standin.messages("U0ADMIN")]
    assert standin.message("U0ADMIN", posted["ts"])["channel"] == im
    assert standin.events_since(0)[0]["channel"] == im


def test_posted_messages_replies_and_updates_show_up_in_channel_state(standin, client):
    root = client.chat_postMessage(channel=CHANNEL, text="Job submitted", blocks=[{"type": "divider"}])
    reply = client.chat_postMessage(channel=CHANNEL, text="Epoch 1 done", thread_ts=root["ts"])
    client.chat_update(channel=CHANNEL, ts=root["ts"], text="Job running")

    assert root["channel"] == CHANNEL and root["message"]["text"] == "Job submitted"
    assert float(reply["ts"]) > float(root["ts"])
    assert standin.channels == [CHANNEL]
    [stored] = standin.messages(CHANNEL)
    assert stored["text"] == "Job running" and stored["edited"] == 1
    assert stored["blocks"] == [{"type": "divider"}]
    assert stored["user"] == "U0BOT" and stored["bot_id"] == "B0BOT"
    assert [r["text"] for r in stored["replies"]] == ["Epoch 1 done"]
    assert [m["ts"] for m in standin.thread(CHANNEL, root["ts"])] == [root["ts"], reply["ts"]]


def test_timestamps_are_unique_and_increasing_under_concurrent_posts(standin, client):
    standin.limits.enabled = False  # ten posts at once into one channel: past Slack's pace
    results: list[str] = []

    def post(i: int) -> None:
        results.append(client.chat_postMessage(channel=CHANNEL, text=f"m{i}")["ts"])

    threads = [threading.Thread(target=post, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 10
    stored = [m["ts"] for m in standin.messages(CHANNEL)]
    assert stored == sorted(stored, key=float) and all(len(ts.split(".")[1]) == 6 for ts in stored)


def test_slack_errors_come_back_as_ok_false_with_slacks_error_codes(client):
    with pytest.raises(SlackApiError) as missing_channel:
        client.chat_postMessage(channel="", text="x")
    assert missing_channel.value.response["error"] == "channel_not_found"
    with pytest.raises(SlackApiError) as no_text, pytest.warns(UserWarning, match="text"):
        client.chat_postMessage(channel=CHANNEL)
    assert no_text.value.response["error"] == "no_text"
    with pytest.raises(SlackApiError) as unknown_ts:
        client.chat_update(channel=CHANNEL, ts="1.000001", text="x")
    assert unknown_ts.value.response["error"] == "message_not_found"
    with pytest.raises(SlackApiError) as unknown_method:
        client.api_call("chat.doesNotExist")
    assert unknown_method.value.response.status_code == 200
    assert unknown_method.value.response["error"] == "unknown_method"


def test_a_reply_to_an_unknown_thread_is_accepted_and_flagged(standin, client):
    client.chat_postMessage(channel=CHANNEL, text="orphan", thread_ts="1600000000.000100")
    [orphan] = standin.thread(CHANNEL, "1600000000.000100")
    assert orphan["thread_missing"] is True and standin.messages(CHANNEL) == []


def test_ephemeral_messages_are_stored_for_their_user_only(standin, client):
    resp = client.chat_postEphemeral(channel=CHANNEL, user="U0ALICE", text="only you can see this")
    assert resp["message_ts"]
    [eph] = standin.ephemerals("U0ALICE")
    assert eph["text"] == "only you can see this" and eph["ephemeral_to"] == "U0ALICE"
    assert standin.ephemerals("U0BOB") == [] and standin.messages(CHANNEL) == []


def test_views_open_returns_the_view_with_an_id_and_requires_a_trigger_id(standin, client):
    title = {"type": "plain_text", "text": "Train"}
    view = {"type": "modal", "callback_id": "submit_job", "title": title, "blocks": []}
    opened = client.views_open(trigger_id="123.456.abc", view=view)
    assert opened["view"]["id"].startswith("V") and opened["view"]["callback_id"] == "submit_job"
    updated = client.views_update(view_id=opened["view"]["id"], view={**view, "private_metadata": "job-1"})
    assert updated["view"]["private_metadata"] == "job-1"
    assert standin.views[0]["private_metadata"] == "job-1"
    with pytest.raises(SlackApiError) as exc:
        client.api_call("views.open", json={"view": view})
    assert exc.value.response["error"] == "invalid_arguments"


def test_files_upload_v2_stores_the_bytes_and_shares_the_file_into_the_thread(standin, client):
    root = client.chat_postMessage(channel=CHANNEL, text="Job finished")
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    resp = client.files_upload_v2(
        channel=CHANNEL, content=png, filename="loss.png", thread_ts=root["ts"], initial_comment="Loss curve"
    )

    file_id = resp["file"]["id"]
    stored = standin.file(file_id)
    assert stored["content"] == png and stored["size"] == len(png) and stored["mimetype"] == "image/png"
    [shared] = standin.messages(CHANNEL)[0]["replies"]
    assert shared["text"] == "Loss curve" and [f["id"] for f in shared["files"]] == [file_id]
    assert stored["shares"] == [{"channel": CHANNEL, "ts": shared["ts"], "thread_ts": root["ts"]}]
    with urllib.request.urlopen(stored["url_private"]) as download:
        assert download.read() == png
    assert [c.method for c in standin.calls][-3:] == [
        "files.getUploadURLExternal",
        "upload",
        "files.completeUploadExternal",
    ]


def test_a_multipart_upload_keeps_only_the_file_part(standin, client):
    file_id = client.files_getUploadURLExternal(filename="a.txt", length=5)["file_id"]
    body = (
        b"--XyZ\r\nContent-Disposition: form-data; name=\"filename\"\r\n\r\na.txt\r\n"
        b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n"
        b"Content-Type: text/plain\r\n\r\nhello\r\n--XyZ--\r\n"
    )
    req = urllib.request.Request(
        f"{standin.base_url}/upload/{file_id}", data=body, headers={"Content-Type": "multipart/form-data; boundary=XyZ"}
    )
    with urllib.request.urlopen(req) as resp:
        assert resp.read() == b"OK - 5"
    assert standin.file(file_id)["content"] == b"hello"


def test_a_429_carries_retry_after_and_surfaces_as_a_slack_api_error(standin, client):
    standin.fail_next("chat.postMessage", status=429, retry_after=1)
    with pytest.raises(SlackApiError) as exc:
        client.chat_postMessage(channel=CHANNEL, text="hi")
    assert exc.value.response.status_code == 429
    assert exc.value.response.headers["Retry-After"] == "1"
    assert exc.value.response.data == {"ok": False, "error": "ratelimited"}
    assert client.chat_postMessage(channel=CHANNEL, text="hi")["ok"]  # fault was one-shot


def test_the_rate_limit_retry_handler_waits_out_a_429_and_then_succeeds(standin):
    client = WebClient(token=TOKEN, base_url=standin.api_url, retry_handlers=[RateLimitErrorRetryHandler()])
    standin.fail_next("chat.postMessage", status=429, retry_after=1)
    started = time.monotonic()
    assert client.chat_postMessage(channel=CHANNEL, text="hi")["ok"]
    assert time.monotonic() - started >= 1
    assert len(standin.calls_to("chat.postMessage")) == 2
    assert len(standin.messages(CHANNEL)) == 1


def test_server_errors_and_injected_error_codes_surface_as_slack_api_errors(standin, client):
    standin.fail_next("chat.update", status=500)
    standin.fail_next("chat.postMessage", error="channel_not_found")
    with pytest.raises(SlackApiError) as server_error:
        client.chat_update(channel=CHANNEL, ts="1.1", text="x")
    assert server_error.value.response.status_code == 500
    with pytest.raises(SlackApiError) as app_error:
        client.chat_postMessage(channel=CHANNEL, text="x")
    assert (app_error.value.response.status_code, app_error.value.response["error"]) == (200, "channel_not_found")


def test_probabilistic_faults_are_reproducible_with_a_seed(standin, client):
    def outcomes() -> list[bool]:
        standin.faults.reseed(7)
        results = []
        for _ in range(20):
            try:
                results.append(client.auth_test()["ok"])
            except SlackApiError:
                results.append(False)
        return results

    standin.faults.rate_limit_probability = 0.3
    standin.faults.server_error_probability = 0.2
    first = outcomes()
    assert first == outcomes() and False in first and True in first
    standin.faults.rate_limit_probability = standin.faults.server_error_probability = 0.0
    assert client.auth_test()["ok"]


def test_response_url_posts_become_ephemeral_or_channel_messages(standin):
    url = standin.response_url(CHANNEL, "U0ALICE")
    for payload in (
        {"text": "Submitting...", "response_type": "ephemeral"},
        {"text": "Job started", "response_type": "in_channel"},
    ):
        req = urllib.request.Request(
            url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req) as resp:
            assert json.loads(resp.read()) == {"ok": True}
    assert [m["text"] for m in standin.ephemerals("U0ALICE")] == ["Submitting..."]
    assert [m["text"] for m in standin.messages(CHANNEL)] == ["Job started"]
    assert [c.params["text"] for c in standin.calls_to("response_url")] == ["Submitting...", "Job started"]


def test_replace_original_through_a_response_url_edits_the_clicked_message(standin, client):
    ts = client.chat_postMessage(channel=CHANNEL, text="Launch?")["ts"]
    url = standin.response_url(CHANNEL, "U0ALICE", message_ts=ts)
    req = urllib.request.Request(
        url, data=json.dumps({"text": "Launched", "replace_original": True}).encode(),
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(req).close()
    assert standin.message(CHANNEL, ts)["text"] == "Launched"


def test_change_events_can_be_long_polled(standin, client):
    sub = standin.subscribe()
    threading.Timer(0.1, lambda: client.chat_postMessage(channel=CHANNEL, text="late")).start()
    events = sub.next(timeout=3)
    assert [(e["type"], e["message"]["text"]) for e in events] == [("message", "late")]
    assert sub.next(timeout=0.05) == []
    client.chat_postEphemeral(channel=CHANNEL, user="U0ALICE", text="psst")
    assert [e["type"] for e in standin.events_since(0)] == ["message", "ephemeral"]


def test_wait_for_returns_once_the_condition_holds(standin, client):
    threading.Timer(0.1, lambda: client.chat_postMessage(channel=CHANNEL, text="async")).start()
    calls = standin.wait_for(lambda: standin.calls_to("chat.postMessage"), timeout=3)
    assert calls[0].params["text"] == "async"
    assert calls[0].headers["authorization"] == f"Bearer {TOKEN}"
    with pytest.raises(TimeoutError):
        standin.wait_for(lambda: False, timeout=0.1)


def test_users_info_and_conversations_info_return_plausible_objects(standin, client):
    standin.scopes |= {"users:read", "channels:read"}  # scopes the deployed manifest does not ask for
    user = client.users_info(user="U0ALICE")["user"]
    assert user["id"] == "U0ALICE" and user["name"] and user["real_name"] and user["tz"]
    channel = client.conversations_info(channel=CHANNEL)["channel"]
    assert channel["id"] == CHANNEL and channel["is_channel"] is True


def test_added_routes_are_served_next_to_the_api(standin):
    standin.add_route("GET", "/", lambda req: (200, {"Content-Type": "text/plain"}, f"page {req.path}"))
    with urllib.request.urlopen(standin.base_url + "/channels/C1") as resp:
        assert resp.read() == b"page /channels/C1"


def test_stop_frees_the_port_for_a_new_bind(standin):
    port = standin.port
    standin.stop()
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
    with SlackStandIn(port=port) as again:
        assert again.port == port


def test_signatures_match_slack_sdks_verifier_and_a_tampered_body_fails():
    body = slash_command_body(text="submit configs/resnet.yaml", response_url="http://127.0.0.1/respond/R1")
    headers = signed_headers(SECRET, body)
    verifier = SignatureVerifier(SECRET)
    assert verifier.is_valid_request(body, headers)
    assert not verifier.is_valid_request(body.replace("resnet", "vgg"), headers)
    assert sign(SECRET, "a=1", 1700000000) == verifier.generate_signature(timestamp="1700000000", body="a=1")


def test_payload_builders_produce_what_slack_sends():
    slash = {k: v[0] for k, v in parse_qs(slash_command_body(text="status", trigger_id="1.2.x")).items()}
    assert (slash["command"], slash["text"], slash["is_enterprise_install"]) == ("/train", "status", "false")
    action = json.loads(parse_qs(block_actions_body("launch", value="job-1", message_ts="1.000100"))["payload"][0])
    assert action["type"] == "block_actions" and action["actions"][0]["value"] == "job-1"
    assert action["container"] == {
        "type": "message",
        "message_ts": "1.000100",
        "channel_id": "C0LOCAL",
        "is_ephemeral": False,
    }
    values = {"b": {"a": {"type": "plain_text_input", "value": "x"}}}
    submission = json.loads(parse_qs(view_submission_body("submit_job", values, private_metadata="m"))["payload"][0])
    assert submission["view"]["state"]["values"] == values and submission["view"]["private_metadata"] == "m"


def test_a_lambda_url_event_round_trips_through_bolts_to_bolt_request():
    body = block_actions_body("launch", value="job-1")
    headers = signed_headers(SECRET, body)
    request = to_bolt_request(lambda_url_event(body, headers))
    assert request.raw_body == body
    assert request.headers["x-slack-signature"] == [headers["X-Slack-Signature"]]
    assert request.headers["x-slack-request-timestamp"] == [headers["X-Slack-Request-Timestamp"]]
    assert request.body["actions"][0]["action_id"] == "launch"


def test_a_signed_slash_command_drives_a_bolt_app_on_lambda_against_the_standin(standin, client):
    app = App(client=client, signing_secret=SECRET, process_before_response=True)

    @app.command("/train")
    def train(ack, respond, say, command):
        ack()
        respond(f"Submitting {command['text']}")
        say("Job submitted")

    body = slash_command_body(text="resnet", channel_id=CHANNEL, response_url=standin.response_url(CHANNEL, "U0USER"))
    context = SimpleNamespace(function_name="trainbot", invoked_function_arn="arn:aws:lambda:local:0:function:trainbot")
    result = SlackRequestHandler(app).handle(lambda_url_event(body, signed_headers(SECRET, body)), context)
    assert result["statusCode"] == 200
    assert [m["text"] for m in standin.ephemerals("U0USER")] == ["Submitting resnet"]
    assert [m["text"] for m in standin.messages(CHANNEL)] == ["Job submitted"]

    forged = SlackRequestHandler(app).handle(lambda_url_event(body, signed_headers("wrong", body)), context)
    assert forged["statusCode"] == 401


def test_with_a_clock_message_ts_are_real_times_and_still_strictly_increase():
    from slack_sdk import WebClient

    with SlackStandIn(clock=lambda: 1_800_000_000.5) as standin:
        client = WebClient(token="xoxb-t", base_url=standin.api_url)
        first = client.chat_postMessage(channel="C1", text="a")["ts"]
        second = client.chat_postMessage(channel="C1", text="b")["ts"]
    assert first == "1800000000.500000"
    assert float(second) > float(first)


def test_a_method_the_installed_scopes_do_not_cover_answers_missing_scope_as_slack_does(standin, client):
    from slack_sdk.errors import SlackApiError

    from infra.local.standins.slack import manifest_scopes

    assert standin.scopes == manifest_scopes() and "files:write" in standin.scopes
    standin.scopes = frozenset({"commands", "chat:write"})
    with pytest.raises(SlackApiError) as refused:
        client.files_getUploadURLExternal(filename="chart.png", length=10)
    answer = refused.value.response.data
    assert answer["error"] == "missing_scope" and answer["needed"] == "files:write"
    assert answer["provided"] == "chat:write,commands"
    assert client.chat_postMessage(channel=CHANNEL, text="still allowed")["ok"]
    with pytest.raises(SlackApiError, match="missing_scope"):
        client.users_info(user="U0ALICE")


def test_every_method_the_stand_in_answers_has_its_documented_scopes():
    from infra.local.standins import slack

    assert set(slack._API_METHODS) == set(slack.METHOD_SCOPES)


# --- files v2, as Slack documents it (tests/fixtures/slack_files_upload_v2.json) ---------------


def test_the_upload_trio_takes_the_documented_requests_and_answers_in_the_documented_shape(standin, client):
    from tests.fixtures import samples

    documented = samples.load("slack_files_upload_v2.json")
    assert "files.getUploadURLExternal" in samples.source("slack_files_upload_v2.json")
    step1, step3 = documented["files.getUploadURLExternal"], documented["files.completeUploadExternal"]
    standin.add_channel(step3["request"]["channel_id"], "documented")
    root = client.chat_postMessage(channel=step3["request"]["channel_id"], text="stats")["ts"]

    got = client.api_call("files.getUploadURLExternal", params=step1["request"]).data
    assert set(got) == set(step1["response"]) and got["ok"] is True and got["file_id"].startswith("F")
    body = bytes(step1["request"]["length"])  # the declared number of bytes, raw, as slack_sdk posts them
    with urllib.request.urlopen(urllib.request.Request(got["upload_url"], data=body, method="POST")) as uploaded:
        assert uploaded.status == 200
    # As documented: files as a JSON string in a form body, the reply's parent as thread_ts.
    request = {**step3["request"], "files": step3["request"]["files"].replace(step1["response"]["file_id"], got["file_id"]), "thread_ts": root}
    done = client.api_call("files.completeUploadExternal", data=request).data
    assert done["ok"] is True and [f["id"] for f in done["files"]] == [got["file_id"]] and done["files"][0]["title"] == "slack-test"
    (reply,) = standin.messages(step3["request"]["channel_id"])[0]["replies"]
    assert reply["text"] == step3["request"]["initial_comment"] and [f["id"] for f in reply["files"]] == [got["file_id"]]
    assert standin.file(got["file_id"])["alt_txt"] == step1["request"]["alt_txt"]


def test_the_upload_trio_refuses_what_the_reference_says_slack_refuses(standin, client):
    with pytest.raises(SlackApiError) as empty:
        client.files_getUploadURLExternal(filename="chart.png", length=0)
    assert empty.value.response["error"] == "missing_argument"
    file_id = client.files_getUploadURLExternal(filename="chart.png", length=3)["file_id"]
    urllib.request.urlopen(urllib.request.Request(f"{standin.base_url}/upload/{file_id}", data=b"abc", method="POST")).close()
    standin.add_channel("C0OTHER", "other")
    # A reply goes to one channel's thread only.
    with pytest.raises(SlackApiError) as two:
        client.files_completeUploadExternal(files=[{"id": file_id}], channels="C0TRAIN,C0OTHER", thread_ts="1700000000.000100")
    assert two.value.response["error"] == "invalid_arguments"
    # Without files:write neither method runs.
    standin.scopes = frozenset({"commands", "chat:write"})
    for call in (lambda: client.files_getUploadURLExternal(filename="chart.png", length=3),
                 lambda: client.files_completeUploadExternal(files=[{"id": file_id}], channel_id=CHANNEL)):
        with pytest.raises(SlackApiError) as refused:
            call()
        assert refused.value.response["error"] == "missing_scope" and refused.value.response["needed"] == "files:write"


def test_a_workspace_exported_and_imported_keeps_threads_dms_and_files_under_their_ids(standin, client):
    root = client.chat_postMessage(channel=CHANNEL, text="card", blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "*card*"}}])
    client.chat_postMessage(channel=CHANNEL, thread_ts=root["ts"], text="reply 1")
    dm = client.chat_postMessage(channel="U0ADMIN", text="Approval needed")
    client.files_upload_v2(channel=CHANNEL, content=b"\x89PNG-bytes", filename="chart.png", title="chart")
    state = json.loads(json.dumps(standin.export_state()))  # what local mode writes to slack.json

    with SlackStandIn(team_id="T0LOCAL", bot_user_id="U0BOT") as again:
        assert again.import_state(state) == 4
        other = WebClient(token=TOKEN, base_url=again.api_url, timeout=5)
        [card, upload] = again.messages(CHANNEL)
        assert card["ts"] == root["ts"] and [r["text"] for r in card["replies"]] == ["reply 1"]
        assert [m["text"] for m in again.messages("U0ADMIN")] == ["Approval needed"] and dm["channel"] == again.im_channel("U0ADMIN")
        [file] = upload["files"]
        assert file["url_private"].startswith(again.base_url) and again.file(file["id"])["content"] == b"\x89PNG-bytes"
        # The app goes on where it was: its card is updated in place, its thread grows, and a
        # new message never takes a restored ts.
        other.chat_update(channel=CHANNEL, ts=root["ts"], text="card, updated")
        reply = other.chat_postMessage(channel=CHANNEL, thread_ts=root["ts"], text="reply 2")
        assert [m["text"] for m in again.thread(CHANNEL, root["ts"])] == ["card, updated", "reply 1", "reply 2"]
        assert float(reply["ts"]) > float(upload["ts"])
        assert other.files_upload_v2(channel=CHANNEL, content=b"x", filename="b.png")["file"]["id"] != file["id"]
