"""lead-scoring in Python: the same rule as examples/lead-scoring (Rust), line for line.

Scores a lead from its job title, company size, source and email domain into a field; when
the score passes the threshold, assigns an owner from the team (least busy or round robin),
moves the lead to the qualified stage and notifies the owner; with `call_within_hours` set,
gives the owner a "Call within N h" task (host API 0.2's `tasks.create`). The config keys
and defaults are the Rust example's. `tests/tests/polyglot.rs` checks that the three languages make the
same effects; the benchmark (`cargo bench -p stagecraft-tests`) compares their cost.

Built with componentize-py against guest-sdk/wit (0.2), world `rule` (scripts/build-polyglot-guests).
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import config, fields, log, messages, records, stages, tasks
from wit_world.imports.log import Level
from wit_world.imports.messages import Channel, Message
from wit_world.imports.records import Filter
from wit_world.imports.tasks import NewTask, Priority
from wit_world.imports.types import Event, RecordKind

DEFAULTS = {
    "title_points": {"cto": 30, "ceo": 30, "vp": 20, "head": 15, "manager": 10},
    "size_points": [
        {"min": 1000, "points": 25},
        {"min": 100, "points": 15},
        {"min": 10, "points": 5},
    ],
    "source_points": {"referral": 25, "webinar": 15},
    "domain_points": {"gmail.com": -15, "yahoo.com": -15},
    "threshold": 50,
    "team": [],
    "assign": "least_busy",
    "qualified_stage": "qualified",
    "score_field": "score",
    "call_within_hours": None,
}


def host(call):
    """Runs a host call, turning a host-error into the rule's error text."""
    try:
        return call()
    except Err as e:
        v = e.value
        raise Err(f"{type(v).__name__.removeprefix('HostError_').lower()}: {getattr(v, 'value', v)}")


def score(cfg, lead, custom):
    total, why = 0, []
    title = custom.get("job_title")
    if isinstance(title, str):
        title = title.lower()
        hits = [(k, p) for k, p in cfg["title_points"].items() if k in title]
        if hits:
            # Highest points win; on a tie the first key in order (as Rust's max_by_key: last max).
            best = max(p for _, p in hits)
            k = [k for k, p in sorted(hits) if p == best][-1]
            total += best
            why.append(f"title {k} {best:+d}")
    size = custom.get("company_size")
    if isinstance(size, int) and not isinstance(size, bool) and size >= 0:
        for r in sorted(cfg["size_points"], key=lambda r: -r["min"]):
            if size >= r["min"]:
                total += r["points"]
                why.append(f"size {size} {r['points']:+d}")
                break
    source = custom.get("source")
    if isinstance(source, str):
        p = cfg["source_points"].get(source.lower())
        if p is not None:
            total += p
            why.append(f"source {source} {p:+d}")
    if lead.email and "@" in lead.email:
        domain = lead.email.rsplit("@", 1)[1].lower()
        p = cfg["domain_points"].get(domain)
        if p is not None:
            total += p
            why.append(f"domain {domain} {p:+d}")
    return total, why


def pick_owner(cfg, lead):
    team = cfg["team"]
    if not team:
        return None
    loads = []
    for member in team:
        f = Filter(kind=RecordKind.LEAD, pipeline=lead.pipeline, stage=None, owner=member)
        loads.append(len(host(lambda: records.find(f, 100))))
    if cfg["assign"] == "round_robin":
        index = sum(loads) % len(team)
    else:
        index = min(range(len(team)), key=lambda i: (loads[i], i))
    return team[index]


class WitWorld(wit_world.WitWorld):
    def handle(self, event: Event) -> None:
        try:
            given = json.loads(config.get() or "{}")
        except ValueError as e:
            raise Err(f"bad config: {e}")
        unknown = set(given) - set(DEFAULTS)
        if unknown:
            raise Err(f"bad config: unknown field {sorted(unknown)[0]}")
        cfg = {**DEFAULTS, **given}
        if event.record is None:
            raise Err("this event has no record")
        lead = host(lambda: records.get(event.record.id))
        if lead.kind != RecordKind.LEAD:
            return
        custom = json.loads(lead.custom or "{}")
        points, why = score(cfg, lead, custom)
        log.write(Level.INFO, f"{lead.id} scores {points} ({', '.join(why) if why else 'no signals'})")
        field = cfg["score_field"]
        if custom.get(field) != points:
            host(lambda: fields.set(lead.id, field, json.dumps(points)))
        if points < cfg["threshold"] or lead.owner is not None or lead.stage == cfg["qualified_stage"]:
            return
        owner = pick_owner(cfg, lead)
        if owner is None:
            log.write(Level.WARN, "qualified, but the config has no team to assign to")
            return
        host(lambda: fields.set(lead.id, "owner", json.dumps(owner)))
        host(lambda: stages.move_to(lead.id, cfg["qualified_stage"]))
        msg = Message(
            channel=Channel.NOTIFY,
            to=owner,
            subject="New qualified lead",
            body=f"{lead.name} (score {points}) is yours",
            idempotency_key=f"lead-scoring/assigned/{lead.id}",
        )
        host(lambda: messages.queue(msg))
        hours = cfg["call_within_hours"]
        if hours is not None:
            call = NewTask(
                record=lead.id,
                title=f"Call within {hours} h",
                description=f"{lead.name} was qualified and assigned to you: call them within {hours} hours.",
                due_in_seconds=hours * 3600,
                priority=Priority.HIGH,
                assignee=owner,
                tags=["call"],
            )
            host(lambda: tasks.create(call))
