"""Planning: the best configuration within a budget and the Pareto frontier (``selector``), what recommend,
generate and plot run and expect (``plan``) and the recommendation's explanation (``recommendation``). Imports
``generation``, ``costs``, ``quality``, ``profiles`` and the wings below them."""
