// The settings dialog (docs/protocol.md §3.6, §6): the settings a person
// chooses — appearing in search, searching, offline notifications and how
// long the messages they send are kept — and whom they block (blocks.js).
// The others (`transport`, `unread_mode`, `resend`) are a client's or an
// operator's business and are kept as the server has them.
//
// They are saved as the user's default (`scope=user`): a tab of this page
// is a device of its own (api.js), so a device's settings would not outlive
// the tab. `PUT` replaces the whole object, so a save reads the settings
// first and writes them back with the changed fields.

import { call } from "./api.js";
import { drawBlocked } from "./blocks.js";

const $ = (id) => document.getElementById(id);

function keepLabel(value) {
  const days = /^days:(\d+)$/.exec(value || "");
  return days ? `${days[1]} days` : value;
}

/// Shows `s` in the form.
function fill(s) {
  $("set-search").checked = s.search !== false;
  $("set-search-view").checked = s.search_view !== false;
  $("set-push").checked = s.offline_push !== false;
  const keep = $("set-keep");
  const value = s.persistence || "forever";
  // A number of days set elsewhere (the CLI) is shown as it is.
  if (![...keep.options].some((o) => o.value === value)) keep.add(new Option(keepLabel(value), value));
  keep.value = value;
}

/// The form's choices over the settings `s` as read.
function chosen(s) {
  return {
    ...s,
    search: $("set-search").checked,
    search_view: $("set-search-view").checked,
    offline_push: $("set-push").checked,
    persistence: $("set-keep").value,
  };
}

function busy(on) {
  for (const e of $("settings-form").elements) e.disabled = on;
}

async function open() {
  $("settings-status").textContent = "";
  $("blocked-error").textContent = "";
  drawBlocked();
  let ok = true;
  try {
    fill(await call("GET", "/v1/settings"));
  } catch (e) {
    ok = false; // nothing to change from: saving would reset the rest
    $("settings-status").textContent = `Your settings could not be read: ${e.message}`;
  }
  busy(!ok);
  if (!$("settings").open) $("settings").showModal();
}

async function save(e) {
  e.preventDefault();
  $("settings-status").textContent = "Saving…";
  busy(true);
  try {
    const now = await call("GET", "/v1/settings");
    fill(await call("PUT", "/v1/settings?scope=user", chosen(now)));
    $("settings-status").textContent = "Saved";
  } catch (err) {
    $("settings-status").textContent = `Not saved: ${err.message}`;
  }
  busy(false);
}

export function wireSettings() {
  $("open-settings").addEventListener("click", open);
  $("settings-form").addEventListener("submit", save);
  $("settings-close").addEventListener("click", () => $("settings").close());
}
