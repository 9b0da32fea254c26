"""The languages of the XTREME and XTREME-R benchmarks, per task, and their task groups: the tables
the official ``evaluate.py`` scores against (a score over fewer languages is not the benchmark's).
"""

XTREME_TASK_LANGUAGES = {
    "pawsx": "de en es fr ja ko zh".split(),
    "xnli": "ar bg de el en es fr hi ru sw th tr ur vi zh".split(),
    "panx": "ar he vi id jv ms tl eu ml ta te af nl en de el bn hi mr ur fa fr it pt es bg ru ja ka ko th sw yo my "
    "zh kk tr et fi hu".split(),
    "udpos": "af ar bg de el en es et eu fa fi fr he hi hu id it ja kk ko mr nl pt ru ta te th tl tr ur vi yo "
    "zh".split(),
    "bucc2018": "de fr ru zh".split(),
    "tatoeba": "ar he vi id jv tl eu ml ta te af nl de el bn hi mr ur fa fr it pt es bg ru ja ka ko th sw zh kk "
    "tr et fi hu".split(),
    "xquad": "en es de el ru tr ar vi th zh hi".split(),
    "mlqa": "en es de ar hi vi zh".split(),
    "tydiqa": "en ar bn fi id ko ru sw te".split(),
}
XTREME_GROUPS = {
    "classification": ["pawsx", "xnli"],
    "tagging": ["udpos", "panx"],
    "qa": ["xquad", "mlqa", "tydiqa"],
    "retrieval": ["bucc2018", "tatoeba"],
}
XTREME_R_TASK_LANGUAGES = {
    "xnli": XTREME_TASK_LANGUAGES["xnli"],
    "xcopa": "et ht id it qu sw ta th tr vi zh".split(),
    "udpos": [*XTREME_TASK_LANGUAGES["udpos"], "lt", "pl", "uk", "wo", "ro"],
    "panx": [*XTREME_TASK_LANGUAGES["panx"], "qu", "pl", "uk", "az", "lt", "pa", "gu", "ro"],
    "xquad": [*XTREME_TASK_LANGUAGES["xquad"], "ro"],
    "mlqa": XTREME_TASK_LANGUAGES["mlqa"],
    "tydiqa": XTREME_TASK_LANGUAGES["tydiqa"],
    "tatoeba": [*XTREME_TASK_LANGUAGES["tatoeba"], "az", "lt", "pl", "uk", "ro"],
    "mewslix": "ar de en es fa ja pl ro ta tr uk".split(),
    "lareqa": "ar de el en es hi ru th tr vi zh".split(),
}
XTREME_R_GROUPS = {
    "classification": ["xnli", "xcopa"],
    "tagging": ["udpos", "panx"],
    "qa": ["xquad", "mlqa", "tydiqa"],
    "retrieval": ["tatoeba", "mewslix", "lareqa"],
}
