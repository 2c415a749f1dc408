// The redaction review (evidence.web.redactions): the original and the redacted copy move together, frame by
// frame, and a region drawn on the copy is added to the form as a line (START-END:X,Y,W,H, in pixels of the
// picture as shown) for one second from the frame it was drawn on; with a time in "follow it until", as a region
// the tracker follows from that frame until then.
"use strict";
(function () {
  const review = document.getElementById("review");
  if (!review) { return; }
  const copy = document.getElementById("review-copy");
  const original = document.getElementById("review-original");
  const stage = document.getElementById("review-stage");
  const band = document.getElementById("review-band");
  const boxes = document.getElementById("redaction-boxes");
  const tracks = document.getElementById("redaction-tracks");
  const followUntil = document.getElementById("review-follow");
  const drawButton = document.getElementById("review-draw");
  const timeShown = document.getElementById("review-time");
  const width = Number(review.dataset.width) || 0;
  const height = Number(review.dataset.height) || 0;
  const fps = Number(review.dataset.fps) || 25;
  const isVideo = copy instanceof HTMLMediaElement;

  function follow() {
    if (!isVideo || !(original instanceof HTMLMediaElement)) { return; }
    if (Math.abs(original.currentTime - copy.currentTime) > 0.5 / fps) { original.currentTime = copy.currentTime; }
    if (timeShown) { timeShown.textContent = copy.currentTime.toFixed(3) + " s"; }
  }

  if (isVideo) {
    copy.addEventListener("timeupdate", follow);
    copy.addEventListener("seeked", follow);
    document.getElementById("review-play").addEventListener("click", function () {
      if (copy.paused) {
        copy.play();
        if (original instanceof HTMLMediaElement) { original.play(); }
      } else {
        copy.pause();
        if (original instanceof HTMLMediaElement) { original.pause(); }
        follow();
      }
    });
    document.querySelectorAll("#review-controls [data-step]").forEach(function (button) {
      button.addEventListener("click", function () {
        copy.pause();
        if (original instanceof HTMLMediaElement) { original.pause(); }
        const to = Math.max(0, copy.currentTime + Number(button.dataset.step) / fps);
        copy.currentTime = Math.min(to, isFinite(copy.duration) ? copy.duration : to);
      });
    });
    document.addEventListener("keydown", function (event) {
      if (event.target instanceof HTMLInputElement || event.target instanceof HTMLTextAreaElement) { return; }
      if (event.key === "ArrowLeft" || event.key === "ArrowRight") {
        event.preventDefault();
        document.querySelector('#review-controls [data-step="' + (event.key === "ArrowLeft" ? "-1" : "1") + '"]')
          .click();
      }
    });
  }

  // A time as the form's fields take it (ingest.redaction.spec.parse_time): 12.5, 01:02.5 or 1:02:03; NaN if not.
  function seconds(text) {
    const found = /^(?:(?:(\d+):)?(\d{1,2}):)?(\d+(?:\.\d+)?)$/.exec(text);
    if (!found) { return NaN; }
    if ((found[1] !== undefined || found[2] !== undefined) && Number(found[3]) >= 60) { return NaN; }
    return Number(found[1] || 0) * 3600 + Number(found[2] || 0) * 60 + Number(found[3]);
  }

  let drawing = false;
  let start = null;

  function at(event) {
    const box = stage.getBoundingClientRect();
    return { x: Math.min(Math.max(event.clientX - box.left, 0), box.width),
             y: Math.min(Math.max(event.clientY - box.top, 0), box.height) };
  }

  drawButton.addEventListener("click", function () {
    drawing = !drawing;
    drawButton.setAttribute("aria-pressed", String(drawing));
    stage.style.cursor = drawing ? "crosshair" : "";
    if (isVideo && drawing) { copy.pause(); }
  });
  stage.addEventListener("pointerdown", function (event) {
    if (!drawing) { return; }
    event.preventDefault();
    start = at(event);
    band.hidden = false;
    band.style.left = start.x + "px";
    band.style.top = start.y + "px";
    band.style.width = "0px";
    band.style.height = "0px";
  });
  stage.addEventListener("pointermove", function (event) {
    if (!drawing || !start) { return; }
    const now = at(event);
    band.style.left = Math.min(start.x, now.x) + "px";
    band.style.top = Math.min(start.y, now.y) + "px";
    band.style.width = Math.abs(now.x - start.x) + "px";
    band.style.height = Math.abs(now.y - start.y) + "px";
  });
  stage.addEventListener("pointerup", function (event) {
    if (!drawing || !start) { return; }
    const end = at(event);
    const shown = stage.getBoundingClientRect();
    const scaleX = width / shown.width;
    const scaleY = height / shown.height;
    const x = Math.floor(Math.min(start.x, end.x) * scaleX);
    const y = Math.floor(Math.min(start.y, end.y) * scaleY);
    const w = Math.min(Math.ceil(Math.abs(end.x - start.x) * scaleX), width - x);
    const h = Math.min(Math.ceil(Math.abs(end.y - start.y) * scaleY), height - y);
    start = null;
    if (w < 2 || h < 2 || !boxes) { band.hidden = true; return; }
    let line = x + "," + y + "," + w + "," + h;
    let into = boxes;
    if (isVideo) {
      const from = copy.currentTime;
      const typed = followUntil ? followUntil.value.trim() : "";
      const until = seconds(typed);
      if (typed !== "" && !(until > from)) {  // never a still box in its place: said, and nothing added
        followUntil.setCustomValidity(typed + ": not a time after " + from.toFixed(2) + " s (seconds, MM:SS or HH:MM:SS)");
        followUntil.reportValidity();
        band.hidden = true;
        drawButton.click();
        return;
      }
      if (followUntil) { followUntil.setCustomValidity(""); }
      if (tracks && typed !== "") {
        into = tracks;
        line = from.toFixed(2) + "-" + until.toFixed(2) + ":" + line;
      } else {
        line = from.toFixed(2) + "-" + (from + 1).toFixed(2) + ":" + line;
      }
    }
    into.value = (into.value.trim() ? into.value.trim() + "\n" : "") + line;
    drawButton.click();
  });
})();
