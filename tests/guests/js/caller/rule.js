// Stagecraft test rule (JavaScript): the `caller` fixture's HTTP call, through `fetch`.
//
// Config: {"calls": [{"method", "url", "headers": {name: value}}], "field": name}. Makes each
// call with fetch (componentize-js implements it over wasi:http/outgoing-handler), logs
// `call N: status S body B` or `call N: error E`, and with "field" writes the last JSON
// answer's `value` to that field of the event's record. Built with http on and fetch-event
// off: componentize-js rule.js --wit guest-sdk/wit --world-name rule --disable fetch-event
// (a marker file `uses-http` tells scripts/build-polyglot-guests).

import { write } from 'stagecraft:automation/log@0.2.0';
import { get as getConfig } from 'stagecraft:automation/config@0.2.0';
import { set as setField } from 'stagecraft:automation/fields@0.2.0';

export async function handle(event) {
  const cfg = JSON.parse(getConfig() || '{}');
  let last;
  let n = 0;
  for (const c of cfg.calls || []) {
    n += 1;
    try {
      const r = await fetch(c.url, { method: c.method || 'GET', headers: c.headers || {} });
      const text = await r.text();
      write('info', `call ${n}: status ${r.status} body ${text.slice(0, 200)}`);
      try { last = JSON.parse(text); } catch (_) { last = undefined; }
    } catch (e) {
      write('warn', `call ${n}: error ${e}`);
    }
  }
  if (cfg.field && last !== undefined && event.record !== undefined) {
    setField(event.record.id, cfg.field, JSON.stringify(last.value));
  }
}
