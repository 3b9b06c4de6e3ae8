"""Stagecraft test rule (Python): move a record out of the "new" stage.

On any event that carries a record: re-read it with `records.get`; if its stage is "new",
move it to the config's "target" stage (default "contacted"); with "comment": true in the
config, also say so on the record's timeline (host API 0.2's `timeline.comment`, which needs
the binding's `comment` grant). Logs via the `log` interface and prints one line to stdout
(the host captures stdout into the run log).

Built with componentize-py against guest-sdk/wit (0.2), world `rule`:
    componentize-py -d guest-sdk/wit -w rule componentize app -o python-mover.wasm
The bindings (`wit_world`, `componentize_py_types`) are generated on the fly.
"""

import json
import re

import wit_world
from componentize_py_types import Err
from wit_world.imports import config, log, records, stages, timeline
from wit_world.imports.log import Level
from wit_world.imports.types import Event


def describe(err: Err) -> str:
    """A host-error (`HostError_NotFound("...")` etc.) as "not-found: ..."."""
    v = err.value
    kind = re.sub(r"(?<!^)(?=[A-Z])", "-", type(v).__name__.removeprefix("HostError_")).lower()
    return f"{kind}: {getattr(v, 'value', v)}"


class WitWorld(wit_world.WitWorld):
    def handle(self, event: Event) -> None:
        # WIT `%record` -> `event.record`; `result<_, string>` -> return None / raise Err(str).
        if event.record is None:
            raise Err(f"event {event.id} has no record")
        record_id = event.record.id

        try:
            cfg = json.loads(config.get() or "{}")
            target = cfg.get("target", "contacted")
            comment = cfg.get("comment", False) is True
        except (ValueError, AttributeError) as e:
            raise Err(f"bad config: {e}")

        try:
            current = records.get(record_id)  # raises Err(HostError_*) on failure
        except Err as e:
            raise Err(f"cannot read record {record_id}: {describe(e)}")

        print(f"python-mover: event {event.id} record {record_id} stage {current.stage}")
        if current.stage == "new":
            try:
                stages.move_to(record_id, target)
            except Err as e:
                raise Err(f"cannot move {record_id} to {target}: {describe(e)}")
            log.write(Level.INFO, f"moved {record_id} from new to {target}")
            if comment:
                try:
                    timeline.comment(record_id, f"Moved from new to {target} by python-mover.")
                except Err as e:
                    raise Err(f"cannot comment on {record_id}: {describe(e)}")
        else:
            log.write(Level.DEBUG, f"{record_id} is in stage {current.stage}; nothing to do")
