// One's profile (docs/protocol.md §3.18): the display name others see
// instead of the username, and an avatar URL.

import { call } from "./api.js";
import { S } from "./state.js";

const $ = (id) => document.getElementById(id);

export function wireProfile(changed) {
  $("open-profile").addEventListener("click", async () => {
    $("profile-status").textContent = "";
    try {
      const me = await call("GET", `/v1/users/${S.me}`);
      $("profile-name").value = me.display_name || "";
      $("profile-avatar").value = me.avatar_url || "";
    } catch {
      /* the form starts empty */
    }
    $("profile").showModal();
  });
  $("profile-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const p = await call("PUT", "/v1/profile", {
        display_name: $("profile-name").value.trim(),
        avatar_url: $("profile-avatar").value.trim(),
      });
      S.names.set(S.me, p.display_name || p.username);
      $("profile-status").textContent = "Saved";
      changed();
    } catch (err) {
      $("profile-status").textContent = err.message;
    }
  });
  $("profile-close").addEventListener("click", () => $("profile").close());
}
