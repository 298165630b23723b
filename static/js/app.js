// Small progressive enhancements for the dashboard: copy buttons, the workspace switcher and
// drag-and-drop upload zones (without JavaScript the zone is a plain file input).
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy-target]");
  if (!button) return;
  const text = document.getElementById(button.dataset.copyTarget).textContent.trim();
  navigator.clipboard.writeText(text).then(() => {
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = label; }, 1500);
  });
});
document.addEventListener("change", (event) => {
  if (event.target.matches("select[data-autosubmit]")) event.target.form.submit();
});
// Forms that destroy something ask first (data-confirm="…"); without JavaScript they just submit.
document.addEventListener("submit", (event) => {
  const message = event.target.dataset && event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});

function enhanceDropzone(zone) {
  const input = zone.querySelector("input[type=file]");
  const shown = zone.querySelector("[data-dropzone-files]");
  if (!input) return;
  zone.classList.add("enhanced");
  const showChosen = () => {
    const names = Array.from(input.files || []).map((file) => file.name);
    zone.classList.toggle("has-file", names.length > 0);
    if (shown) shown.textContent = names.length ? names.join(", ") : "";
  };
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (event) => { event.preventDefault(); zone.classList.add("dragging"); });
  }
  for (const type of ["dragleave", "drop"]) {
    zone.addEventListener(type, () => zone.classList.remove("dragging"));
  }
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    const files = event.dataTransfer && event.dataTransfer.files;
    if (!files || !files.length) return;
    if (!input.multiple && files.length > 1) {
      const one = new DataTransfer();
      one.items.add(files[0]);
      input.files = one.files;
    } else {
      input.files = files;
    }
    showChosen();
  });
  input.addEventListener("change", showChosen);
  showChosen();
}
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-dropzone]").forEach(enhanceDropzone);
});
