// lead-scoring in JavaScript: the same rule as examples/lead-scoring (Rust), line for line.
//
// Scores a lead from its job title, company size, source and email domain into a field; when
// the score passes the threshold, assigns an owner from the team (least busy or round robin),
// moves the lead to the qualified stage and notifies the owner; with `call_within_hours` set,
// gives the owner a "Call within N h" task (host API 0.2's `tasks.create`). The config keys
// and defaults are the Rust example's. tests/tests/polyglot.rs checks that the three languages make the
// same effects; the benchmark (cargo bench -p stagecraft-tests) compares their cost.
//
// Built with componentize-js against guest-sdk/wit (0.2), world `rule` (scripts/build-polyglot-guests).

import { get as getRecord, find } from 'stagecraft:automation/records@0.2.0';
import { moveTo } from 'stagecraft:automation/stages@0.2.0';
import { set as setField } from 'stagecraft:automation/fields@0.2.0';
import { queue } from 'stagecraft:automation/messages@0.2.0';
import { write } from 'stagecraft:automation/log@0.2.0';
import { get as getConfig } from 'stagecraft:automation/config@0.2.0';
import { create as createTask } from 'stagecraft:automation/tasks@0.2.0';

const DEFAULTS = {
  title_points: { cto: 30, ceo: 30, vp: 20, head: 15, manager: 10 },
  size_points: [
    { min: 1000, points: 25 },
    { min: 100, points: 15 },
    { min: 10, points: 5 },
  ],
  source_points: { referral: 25, webinar: 15 },
  domain_points: { 'gmail.com': -15, 'yahoo.com': -15 },
  threshold: 50,
  team: [],
  assign: 'least_busy',
  qualified_stage: 'qualified',
  score_field: 'score',
  call_within_hours: null,
};

// A host call whose host-error becomes the rule's error text (thrown as a string).
function host(call) {
  try {
    return call();
  } catch (e) {
    const p = e && e.payload;
    throw p && p.tag ? `${p.tag}: ${p.val}` : String(e);
  }
}

const signed = (n) => (n >= 0 ? `+${n}` : `${n}`);

function score(cfg, lead, custom) {
  let total = 0;
  const why = [];
  if (typeof custom.job_title === 'string') {
    const title = custom.job_title.toLowerCase();
    // Highest points win; on a tie the last key in sorted order (as Rust's max_by_key).
    let best = null;
    for (const k of Object.keys(cfg.title_points).sort()) {
      const p = cfg.title_points[k];
      if (title.includes(k) && (best === null || p >= best[1])) best = [k, p];
    }
    if (best) {
      total += best[1];
      why.push(`title ${best[0]} ${signed(best[1])}`);
    }
  }
  const size = custom.company_size;
  if (Number.isInteger(size) && size >= 0) {
    const rules = [...cfg.size_points].sort((a, b) => b.min - a.min);
    const r = rules.find((r) => size >= r.min);
    if (r) {
      total += r.points;
      why.push(`size ${size} ${signed(r.points)}`);
    }
  }
  if (typeof custom.source === 'string') {
    const p = cfg.source_points[custom.source.toLowerCase()];
    if (p !== undefined) {
      total += p;
      why.push(`source ${custom.source} ${signed(p)}`);
    }
  }
  const at = lead.email ? lead.email.lastIndexOf('@') : -1;
  if (at >= 0) {
    const domain = lead.email.slice(at + 1).toLowerCase();
    const p = cfg.domain_points[domain];
    if (p !== undefined) {
      total += p;
      why.push(`domain ${domain} ${signed(p)}`);
    }
  }
  return [total, why];
}

function pickOwner(cfg, lead) {
  if (cfg.team.length === 0) return undefined;
  const loads = cfg.team.map(
    (member) =>
      host(() => find({ kind: 'lead', pipeline: lead.pipeline, stage: undefined, owner: member }, 100)).length,
  );
  let index = 0;
  if (cfg.assign === 'round_robin') {
    index = loads.reduce((a, b) => a + b, 0) % cfg.team.length;
  } else {
    loads.forEach((n, i) => {
      if (n < loads[index]) index = i;
    });
  }
  return cfg.team[index];
}

export function handle(event) {
  let given;
  try {
    given = JSON.parse(getConfig() || '{}');
  } catch (e) {
    throw `bad config: ${e}`;
  }
  const unknown = Object.keys(given).filter((k) => !(k in DEFAULTS));
  if (unknown.length > 0) throw `bad config: unknown field ${unknown.sort()[0]}`;
  const cfg = { ...DEFAULTS, ...given };
  if (event.record === undefined) throw 'this event has no record';
  const lead = host(() => getRecord(event.record.id));
  if (lead.kind !== 'lead') return;
  const custom = JSON.parse(lead.custom || '{}');
  const [points, why] = score(cfg, lead, custom);
  write('info', `${lead.id} scores ${points} (${why.length ? why.join(', ') : 'no signals'})`);
  if (custom[cfg.score_field] !== points) {
    host(() => setField(lead.id, cfg.score_field, JSON.stringify(points)));
  }
  if (points < cfg.threshold || lead.owner !== undefined || lead.stage === cfg.qualified_stage) return;
  const owner = pickOwner(cfg, lead);
  if (owner === undefined) {
    write('warn', 'qualified, but the config has no team to assign to');
    return;
  }
  host(() => setField(lead.id, 'owner', JSON.stringify(owner)));
  host(() => moveTo(lead.id, cfg.qualified_stage));
  host(() =>
    queue({
      channel: 'notify',
      to: owner,
      subject: 'New qualified lead',
      body: `${lead.name} (score ${points}) is yours`,
      idempotencyKey: `lead-scoring/assigned/${lead.id}`,
    }),
  );
  const hours = cfg.call_within_hours;
  if (hours !== null && hours !== undefined) {
    // u64 is a BigInt; option<T> is the value or undefined; enums are their WIT names.
    host(() =>
      createTask({
        record: lead.id,
        title: `Call within ${hours} h`,
        description: `${lead.name} was qualified and assigned to you: call them within ${hours} hours.`,
        dueInSeconds: BigInt(hours) * 3600n,
        priority: 'high',
        assignee: owner,
        tags: ['call'],
      }),
    );
  }
}
