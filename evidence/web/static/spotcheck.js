// The spot-check page's side panel: the recording chosen from the list plays (or shows) beside it, so the reviewer
// records the outcome without leaving the page. Each play is the session's recorded access with the check as its
// stated reason; nothing is fetched before a recording is chosen. Without this script each item's page plays it.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const title = document.getElementById("review-title");
  const video = document.getElementById("review-player");
  const photo = document.getElementById("review-photo");
  if (!title || !video || !photo) return;
  document.querySelectorAll("button[data-review]").forEach((button) => {
    button.addEventListener("click", () => {
      document.querySelectorAll("tr[aria-current]").forEach((row) => row.removeAttribute("aria-current"));
      button.closest("tr").setAttribute("aria-current", "true");
      title.textContent = button.dataset.name;
      if (button.dataset.kind === "photo") {
        video.pause();
        video.hidden = true;
        photo.src = button.dataset.src;
        photo.alt = button.dataset.name;
        photo.hidden = false;
      } else {
        photo.hidden = true;
        video.hidden = false;
        video.src = button.dataset.src;
        video.play().catch(() => {});
      }
    });
  });
});
