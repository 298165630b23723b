// Fields that only matter for one choice of a radio group: an element marked
// data-shown-when="<radio name>" data-shown-value="<value>" is hidden while another value of
// that group is chosen (the schedule form's cron/interval cadence and rolling/fixed window).
// Without JavaScript every field stays visible and the server reads only the chosen ones.
(function () {
  function chosen(form, name) {
    const radio = form.querySelector(`input[type=radio][name="${name}"]:checked`);
    return radio ? radio.value : null;
  }

  function sync(form) {
    form.querySelectorAll("[data-shown-when]").forEach((block) => {
      const value = chosen(form, block.dataset.shownWhen);
      block.hidden = value !== null && value !== block.dataset.shownValue;
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("form").forEach((form) => {
      if (!form.querySelector("[data-shown-when]")) return;
      form.addEventListener("change", (event) => {
        if (event.target.matches("input[type=radio]")) sync(form);
      });
      sync(form);
    });
  });
})();
