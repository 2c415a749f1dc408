// The search page. Its bulk form: "select all on this page", the count of ticked results, and only the chosen
// action's fields shown. Without this script the form still works: every field is shown and each box is ticked
// by hand.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("bulk");
  if (!form) return;
  const boxes = () => Array.from(document.querySelectorAll('input[name="ids"][form="bulk"]'));
  const all = document.getElementById("pick-page");
  const picked = document.getElementById("picked");
  const action = document.getElementById("bulk-action");
  const count = () => {
    const ticked = boxes().filter((b) => b.checked).length;
    picked.textContent = String(ticked);
    all.checked = ticked > 0 && ticked === boxes().length;
    all.indeterminate = ticked > 0 && ticked < boxes().length;
  };
  all.addEventListener("change", () => {
    boxes().forEach((b) => { b.checked = all.checked; });
    const ticked = form.querySelector('input[name="every"][value=""]');
    if (ticked) ticked.checked = true;
    count();
  });
  boxes().forEach((b) => b.addEventListener("change", count));
  const show = () => {
    form.querySelectorAll("fieldset[data-action]").forEach((f) => {
      f.hidden = f.dataset.action !== action.value;
      f.disabled = f.hidden;
    });
  };
  action.addEventListener("change", show);
  show();
  count();
});

// A date picked from the calendar goes into the time box beside it, which takes any form the agency types.
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("input.picker[data-for]").forEach((picker) => {
    picker.addEventListener("change", () => {
      const box = document.getElementById(picker.dataset.for);
      if (box && picker.value) box.value = picker.value;
    });
  });
});
