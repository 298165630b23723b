// The sweep page: sort the points table by a column (click its heading; again to reverse),
// and reload the page every 2 s while the sweep runs so that its progress follows its points.
function sortTable(table, column, kind, descending) {
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  const key = (row) => {
    const cell = row.cells[column];
    const raw = cell.dataset.value !== undefined ? cell.dataset.value : cell.textContent.trim();
    if (kind !== "num") return raw.toLowerCase();
    const number = parseFloat(raw);
    return Number.isNaN(number) ? null : number;
  };
  rows.sort((a, b) => {
    const x = key(a), y = key(b);
    if (x === y) return 0;
    if (x === null) return 1;  // points without the value (not completed) go last either way
    if (y === null) return -1;
    return (x < y ? -1 : 1) * (descending ? -1 : 1);
  });
  rows.forEach((row) => body.appendChild(row));
}

document.addEventListener("click", (event) => {
  const heading = event.target.closest("table.sortable th[data-sort]");
  if (!heading) return;
  const table = heading.closest("table");
  const descending = heading.getAttribute("aria-sort") === "ascending";
  table.querySelectorAll("th[aria-sort]").forEach((th) => th.removeAttribute("aria-sort"));
  heading.setAttribute("aria-sort", descending ? "descending" : "ascending");
  sortTable(table, heading.cellIndex, heading.dataset.sort, descending);
});

document.addEventListener("DOMContentLoaded", () => {
  if (document.querySelector("[data-sweep-running]")) {
    setTimeout(() => window.location.reload(), 2000);
  }
});
