// The recording page's player: speed 0.25–2×, one frame back or on, the time on the agency's clock (capture
// start + position, in EVIDENCE_STATION_TZ), keyboard shortcuts, and the position for a snapshot. Without this script the browser's own
// controls still play the recording.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const media = document.getElementById("player");
  const controls = document.getElementById("player-controls");
  if (!media || !controls) return;
  const fps = Number(controls.dataset.fps) || 25;
  const start = controls.dataset.start ? Date.parse(controls.dataset.start) : NaN;
  const speed = document.getElementById("speed");
  const timecode = document.getElementById("timecode");
  const clock = new Intl.DateTimeFormat("en-US", {
    timeZone: controls.dataset.zone || undefined, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23", timeZoneName: "longOffset"});
  // as the server writes times (evidence.web.app.local_time): 2026-11-20 10:20:00 +08:00, then the frame
  const local = (at) => {
    const part = Object.fromEntries(clock.formatToParts(at).map((p) => [p.type, p.value]));
    const offset = (part.timeZoneName || "GMT").replace("GMT", "") || "+00:00";
    return `${part.year}-${part.month}-${part.day} ${part.hour}:${part.minute}:${part.second} ${offset}`;
  };
  const show = () => {
    if (Number.isNaN(start)) return;
    const at = new Date(start + media.currentTime * 1000);
    const frame = Math.round(media.currentTime * fps) % Math.max(1, Math.round(fps));
    timecode.textContent = `${local(at)} +${String(frame).padStart(2, "0")}f`;
  };
  const rates = Array.from(speed.options).map((o) => Number(o.value));
  const setRate = (rate) => {
    media.playbackRate = rate;
    speed.value = String(rate);
  };
  const step = (frames) => {
    media.pause();
    media.currentTime = Math.max(0, Math.min(media.duration || Infinity, media.currentTime + frames / fps));
  };
  speed.addEventListener("change", () => setRate(Number(speed.value)));
  controls.querySelectorAll("[data-step]").forEach((button) => {
    button.addEventListener("click", () => step(Number(button.dataset.step)));
  });
  media.addEventListener("timeupdate", show);
  media.addEventListener("seeked", show);
  // the snapshot form keeps the frame on screen (the server decodes it from the original)
  const at = document.getElementById("snapshot-at");
  if (at) {
    const keep = () => { at.value = media.currentTime.toFixed(3); };
    ["timeupdate", "seeked", "pause"].forEach((name) => media.addEventListener(name, keep));
  }
  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (target instanceof HTMLElement && target.closest("input, textarea, select, button, [contenteditable]")) return;
    const index = rates.indexOf(media.playbackRate);
    const moves = {
      " ": () => (media.paused ? media.play() : media.pause()),
      k: () => (media.paused ? media.play() : media.pause()),
      ArrowLeft: () => { media.currentTime = Math.max(0, media.currentTime - 5); },
      ArrowRight: () => { media.currentTime = media.currentTime + 5; },
      ",": () => step(-1),
      ".": () => step(1),
      "[": () => setRate(rates[Math.max(0, (index < 0 ? 2 : index) - 1)]),
      "]": () => setRate(rates[Math.min(rates.length - 1, (index < 0 ? 2 : index) + 1)]),
    };
    const move = moves[event.key];
    if (move) {
      event.preventDefault();
      move();
    }
  });
  show();
});
