"""Presets: named team defaults (image, role, input, output, instance…) for a submit or sweep.

A preset is a small record in the jobs table, ``preset#<name>``, holding the grammar's own
``key=value`` fields (so ``preset show`` prints exactly what a scientist would type) and who
saved it. One index record, ``preset-index#all``, maps every name to its creator so that
``preset list`` is one GetItem, never a Scan.

Who may change a preset: anyone allowed to use Trainbot may create a new name; only its creator
or an admin may overwrite or delete it (a team's defaults should not change under its feet).
A preset named after a team (TRAINBOT_USER_TEAMS, TRAINBOT_TEAM_BUDGETS) is that team's
defaults, whose image and role everyone using it runs with: only an admin saves or deletes one.
Fields given with the request (the command line, the modal, a CLI spec) win over the preset's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from backend.domain.records import RecordKind
from backend.domain.spec import PRESET_NAME, PRESET_USAGE, BadCommand
from backend.errors import NotAuthorized, StoreUnavailable
from backend.ports import RecordStore

KIND = RecordKind.PRESET
INDEX_KIND = RecordKind.PRESET_INDEX
INDEX_KEY = "all"


@dataclass(frozen=True)
class Preset:
    name: str
    fields: dict[str, str]
    creator: str


class PresetNotFound(BadCommand):
    """No preset has this name."""

    def __init__(self, name: str) -> None:
        super().__init__([f"preset: there is no preset {name!r}; `/train preset list` shows them"], PRESET_USAGE)
        self.name = name


class PresetNotYours(NotAuthorized):
    """Someone else's preset: only its creator or an admin may change it."""

    def __init__(self, name: str, creator: str) -> None:
        super().__init__(f"preset {name} belongs to {creator}")
        self.name = name
        self.creator = creator


class TeamPresetNeedsAdmin(NotAuthorized):
    """A preset named after a team: only an admin may save or delete it."""

    def __init__(self, name: str) -> None:
        super().__init__(f"preset {name} holds team {name}'s defaults: only an admin may save or delete it")
        self.name = name


class PresetBusy(StoreUnavailable):
    """The preset kept changing while it was being saved (someone else is saving it)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"preset {name} is being changed by someone else; try again")
        self.name = name


class PresetBook:
    """Presets over the store's small-record API (``put_record`` / ``get_record``)."""

    def __init__(self, store: RecordStore, *, is_admin: Callable[[str], bool], teams: Iterable[str] = ()) -> None:
        self._store = store
        self._is_admin = is_admin
        self._teams = {team.lower() for team in teams}

    def get(self, name: str) -> Preset:
        record = self._store.get_record(KIND, name)
        if record is None:
            raise PresetNotFound(name)
        return Preset(name, {str(k): str(v) for k, v in record.get("Fields", {}).items()}, str(record.get("Creator", "")))

    def names(self) -> dict[str, str]:
        """Every preset's name and creator."""
        record = self._store.get_record(INDEX_KIND, INDEX_KEY) or {}
        return {str(k): str(v) for k, v in record.get("Names", {}).items()}

    def save(self, name: str, fields: dict[str, str], user_id: str) -> bool:
        """Create or replace preset ``name``; True if it is new. :class:`NotAuthorized` when it
        belongs to someone else and ``user_id`` is no admin (or is a team's and they are none)."""
        self._authorize_team(name, user_id)
        for _ in range(3):
            existing = self._store.get_record(KIND, name)
            if existing is not None:
                self._authorize(name, str(existing.get("Creator", "")), user_id)
            creator = str(existing.get("Creator", user_id)) if existing else user_id
            attributes = {"Fields": fields, "Creator": creator, "UpdatedBy": user_id}
            # Conditional on what was read, so two people saving one name at once cannot both
            # become its creator.
            written = (
                self._store.put_record(KIND, name, attributes, only_if={"Creator": creator})
                if existing is not None
                else self._store.put_record(KIND, name, attributes, only_if_absent=True)
            )
            if written:
                self._store.set_record_entry(INDEX_KIND, INDEX_KEY, "Names", name, creator)
                return existing is None
        raise PresetBusy(name)

    def delete(self, name: str, user_id: str) -> None:
        self._authorize_team(name, user_id)
        preset = self.get(name)
        self._authorize(name, preset.creator, user_id)
        self._store.delete_record(KIND, name)
        self._store.set_record_entry(INDEX_KIND, INDEX_KEY, "Names", name, None)

    def _authorize_team(self, name: str, user_id: str) -> None:
        if name.lower() in self._teams and not self._is_admin(user_id):
            raise TeamPresetNeedsAdmin(name)

    def _authorize(self, name: str, creator: str, user_id: str) -> None:
        if creator and creator != user_id and not self._is_admin(user_id):
            raise PresetNotYours(name, creator)

    def merged(self, fields: dict[str, str]) -> dict[str, str]:
        """``fields`` on top of the preset they name (if any)."""
        name = fields.get("preset")
        if not name:
            return dict(fields)
        if not PRESET_NAME.match(name.lower()):
            raise PresetNotFound(name[:40])
        preset = self.get(name.lower())
        return {**preset.fields, **fields, "preset": preset.name}
