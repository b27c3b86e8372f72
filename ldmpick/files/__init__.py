"""Files: the one reader of files people hand ldmpick (``reader``: regular files only, byte caps, strict JSON),
atomic storage, locks and the user folders (``storage``), where outputs may go (``output_paths``) and the error family
(``errors``). The bottom layer: it imports no other wing."""
