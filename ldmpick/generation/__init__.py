"""Generation: running a plan with the model's own diffusers pipeline, timing each part (``runner``), the typed
run record (``record``), the images and their sidecars (``outputs``) and latency drift against the prediction
(``drift``). Imports ``measurement`` and every wing below it."""
