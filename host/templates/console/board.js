// Stagecraft board: drag a card onto another column to move it. Only an enhancement: it
// fills in the card's own stage menu and submits the card's own form, so the move takes the
// same path (and shows the same result) as choosing the stage and pressing "Move".
(function () {
  "use strict";
  var board = document.getElementById("board");
  if (!board) { return; }
  board.addEventListener("dragstart", function (e) {
    var card = e.target.closest && e.target.closest("article.card[draggable]");
    if (card) { e.dataTransfer.setData("text/plain", card.id); }
  });
  board.addEventListener("dragover", function (e) {
    if (e.target.closest && e.target.closest("section.column")) { e.preventDefault(); }
  });
  board.addEventListener("drop", function (e) {
    var column = e.target.closest && e.target.closest("section.column");
    var card = document.getElementById(e.dataTransfer.getData("text/plain"));
    if (!column || !card) { return; }
    e.preventDefault();
    var select = card.querySelector("select[name=stage]");
    var stage = column.getAttribute("data-stage");
    if (!select || !select.querySelector("option[value='" + CSS.escape(stage) + "']")) { return; }
    select.value = stage;
    select.form.submit();
  });
})();
