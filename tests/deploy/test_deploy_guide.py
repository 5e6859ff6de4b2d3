"""The deploy guide (README "Deploy") and the Slack app manifest cannot drift from what the
template declares and what the bot calls: deploying cannot be tested here, so every name the
guide tells an engineer to use is checked against the template."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from infra.local.standins.slack import METHOD_SCOPES, manifest_scopes
from infra.template import TEMPLATE_PATH, load_template

ROOT = TEMPLATE_PATH.parent
MANIFEST = ROOT / "infra" / "deploy" / "slack-app-manifest.yaml"
# Bot scopes each Slack Web API method needs (https://api.slack.com/methods): the Slack
# stand-in's table, which it enforces; a response_url and the upload URL need none.
SCOPES_NEEDED = {**{method: set(scopes) for method, scopes in METHOD_SCOPES.items()}, "response_url": set(), "upload": set()}


def deploy_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("\n## Deploy\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_the_guides_parameter_table_is_the_templates_parameters_with_their_defaults():
    parameters = load_template()["Parameters"]
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \|", deploy_section(), flags=re.M)
    names = [name for name, _ in rows]
    assert len(names) == len(set(names)) and set(names) == set(parameters)
    for name, default in rows:
        declared = parameters[name].get("Default")
        if declared in (None, ""):
            assert "`" not in default, f"{name}: the guide shows a default the template lacks"
        else:
            assert f"`{declared}`" in default, f"{name}: the guide says {default.strip()}, the template {declared}"


def test_the_guides_outputs_are_the_templates_outputs():
    section = deploy_section()
    listed = re.search(r"Outputs: (.*?)\.\n", section, flags=re.S)
    assert listed is not None
    assert re.findall(r"`(\w+)`", listed.group(1)) == list(load_template()["Outputs"])


def test_the_guides_secret_name_and_environment_names_are_the_templates():
    template = load_template()
    section = deploy_section()
    assert template["Resources"]["SlackSecret"]["Properties"]["Name"] == {"Fn::Sub": "${AWS::StackName}/slack"}
    assert '--secret-id "<stack name>/slack"' in section
    assert '{"signing_secret": ' in section and '"bot_token": ' in section
    generated = template["Resources"]["SlackSecret"]["Properties"]["GenerateSecretString"]
    assert set(yaml.safe_load(generated["SecretStringTemplate"])) | {generated["GenerateStringKey"]} == {"signing_secret", "bot_token"}
    environment = template["Globals"]["Function"]["Environment"]["Variables"]
    for variable in re.findall(r"`((?:TRAINBOT|SLACK)_[A-Z_]+)`", section):
        assert variable in environment, variable


def test_the_commands_and_files_the_guide_names_exist():
    section = deploy_section()
    assert "python -m infra.deploy.validate" in section and (ROOT / "infra" / "deploy" / "validate.py").exists()
    assert "`infra/deploy/slack-app-manifest.yaml`" in section and MANIFEST.exists()
    assert "sam build" in section and "sam deploy --guided" in section


def test_the_manifest_declares_the_command_interactivity_and_the_scopes_the_bot_uses(recording):
    manifest = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == "/train"
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert command["url"] == manifest["settings"]["interactivity"]["request_url"]
    assert "event_subscriptions" not in manifest["settings"]  # the bot answers no Events API
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"commands", "chat:write"} <= scopes

    called = recording.slack_methods
    assert {"chat.postMessage", "chat.update", "views.open", "files.getUploadURLExternal", "files.completeUploadExternal"} <= called
    unknown = called - set(SCOPES_NEEDED)
    assert not unknown, f"the bot calls Slack methods this test does not know the scopes of: {unknown}"
    for method in called:
        assert not SCOPES_NEEDED[method] or SCOPES_NEEDED[method] & scopes, f"{method} needs one of {SCOPES_NEEDED[method]}"
    needed = set().union(*(SCOPES_NEEDED[m] for m in called))
    assert scopes - needed - {"commands", "chat:write.public"} == set(), "scopes nothing uses"
    # The stand-in the scenarios ran against enforced exactly these scopes.
    assert manifest_scopes(MANIFEST) == scopes
    assert not recording.missing_scope, recording.missing_scope


def test_the_manifest_is_where_the_guide_says_and_its_urls_are_placeholders_for_the_output():
    text = MANIFEST.read_text(encoding="utf-8")
    assert text.count("REPLACE-WITH-SlackRequestUrl") == 2
    assert "SlackRequestUrl" in load_template()["Outputs"]
    assert Path(MANIFEST).relative_to(ROOT).as_posix() == "infra/deploy/slack-app-manifest.yaml"
