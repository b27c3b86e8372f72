"""Models: the catalogue of what ldmpick can name (the paper's family, the demo family, released models as configs,
local folders, cached hub ids), the registry of models people add, the samplers, and one adapter per backbone family
(``families``). Imports ``files`` and ``demo`` (the demo family's sizes)."""
