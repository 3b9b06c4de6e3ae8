// Stagecraft test rule (JavaScript): move a record out of the "new" stage.
//
// On any event that carries a record: re-read it with `records.get`; if its stage is "new",
// move it to the config's "target" stage (default "contacted"); with "comment": true in the
// config, also say so on the record's timeline (host API 0.2's `timeline.comment`, which needs
// the binding's `comment` grant). Logs via the `log` interface and prints one line to stdout
// with console.log (the host captures stdout into the run log).
//
// Built with componentize-js against guest-sdk/wit (0.2), world `rule`:
//   componentize-js rule.js --wit guest-sdk/wit --world-name rule \
//     --disable http fetch-event -o js-mover.wasm
// Imports are the WIT interface names with the package version; WIT kebab-case names become
// camelCase (`move-to` -> moveTo, `%record` -> record, `from-stage` -> fromStage).
// A `result<T, host-error>` import returns T or throws; `result<_, string>` from `handle`
// is ok when it returns, err(message) when it throws.

import { get as getRecord } from 'stagecraft:automation/records@0.2.0';
import { moveTo } from 'stagecraft:automation/stages@0.2.0';
import { write } from 'stagecraft:automation/log@0.2.0';
import { get as getConfig } from 'stagecraft:automation/config@0.2.0';
import { comment as addComment } from 'stagecraft:automation/timeline@0.2.0';

// A host-error is thrown as an Error whose `payload` is { tag: 'not-found' | ..., val: string }.
function describe(e) {
  const p = e && e.payload;
  return p && p.tag ? `${p.tag}: ${p.val}` : String(e);
}

export function handle(event) {
  if (event.record === undefined) {
    throw `event ${event.id} has no record`;
  }
  const id = event.record.id;

  let target = 'contacted';
  let comment = false;
  try {
    const cfg = JSON.parse(getConfig() || '{}');
    if (cfg && typeof cfg.target === 'string') target = cfg.target;
    comment = Boolean(cfg && cfg.comment === true);
  } catch (e) {
    throw `bad config: ${e}`;
  }

  let current;
  try {
    current = getRecord(id);
  } catch (e) {
    throw `cannot read record ${id}: ${describe(e)}`;
  }

  console.log(`js-mover: event ${event.id} record ${id} stage ${current.stage}`);
  if (current.stage === 'new') {
    try {
      moveTo(id, target);
    } catch (e) {
      throw `cannot move ${id} to ${target}: ${describe(e)}`;
    }
    write('info', `moved ${id} from new to ${target}`);
    if (comment) {
      try {
        addComment(id, `Moved from new to ${target} by js-mover.`);
      } catch (e) {
        throw `cannot comment on ${id}: ${describe(e)}`;
      }
    }
  } else {
    write('debug', `${id} is in stage ${current.stage}; nothing to do`);
  }
}
