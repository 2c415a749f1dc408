// The case page's playlist: plays the case's browser copies one after another in capture order. Each item is
// fetched only when it is played, with the stated reason where the agency's policy asks for one (the server
// records the session's first play of each as an access). Without this script each item's page still plays it.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const player = document.getElementById("playlist-player");
  const list = document.getElementById("playlist-items");
  if (!player || !list) return;
  const buttons = Array.from(list.querySelectorAll("button[data-src]"));
  const reason = document.getElementById("playlist-reason");
  const now = document.getElementById("playlist-now");
  let current = -1;
  const play = (index) => {
    if (index < 0 || index >= buttons.length) return;
    const stated = reason ? reason.value.trim() : "";
    if (reason && !stated) {
      reason.reportValidity();
      reason.focus();
      return;
    }
    current = index;
    buttons.forEach((b, i) => b.setAttribute("aria-current", i === index ? "true" : "false"));
    const src = buttons[index].dataset.src + (stated ? `?reason=${encodeURIComponent(stated)}` : "");
    player.src = src;
    now.textContent = `${index + 1} / ${buttons.length}: ${buttons[index].textContent}`;
    player.play().catch(() => {});
  };
  buttons.forEach((button, index) => button.addEventListener("click", () => play(index)));
  player.addEventListener("ended", () => play(current + 1));
  // an item the server cannot give now (its copy gone, a class changed since the page was made): say so, go on
  player.addEventListener("error", () => {
    if (current < 0) return;
    buttons[current].classList.add("failed");
    now.textContent = `${current + 1} / ${buttons.length}: ${buttons[current].textContent} ✕`;
    play(current + 1);
  });
  player.addEventListener("play", () => { if (current < 0) play(0); });
});
