"""The scripted protocol of a guidance session: adult cardiac arrest, per role, zh and en.

The dispatcher advances the steps; every participant sees the current one and reads its text
for its own role: `dispatcher` (the 120 console), `cpr` (a responder sent straight to the
patient) or `aed` (a responder fetching an AED). Steps with `metronome: true` are the ones
during which compressions run: clients play the cadence (`cadence_per_min`, 100-120/min,
RESCUE_METRONOME_PER_MIN) while such a step is current. The texts follow the lay-rescuer
sequence of the AHA/ERC and Chinese guidelines: check responsiveness and breathing, push hard
and fast (100-120/min, 5-6 cm, full recoil), AED: power on, pads, stand clear for analysis,
shock, resume compressions at once; hand over to EMS.
"""

from __future__ import annotations

from typing import Any

PROTOCOL_ID = "adult_cardiac_arrest"
PROTOCOL_VERSION = 1
ROLES = ("dispatcher", "cpr", "aed")
RATE_PER_MIN = (100, 120)
DEPTH_CM = (5, 6)


def _t(zh: str, en: str) -> dict[str, str]:
    return {"text_zh": zh, "text_en": en}


_CLEAR = _t(
    "大声说“大家离开！”，任何人都不要接触患者，让 AED 分析心律。",
    "Say loudly “Everyone clear!” Nobody touches the patient while the AED analyses.",
)

# (id, title zh, title en, metronome, markers reported in this step, texts by role)
_STEPS: tuple[tuple[str, str, str, bool, tuple[str, ...], dict[str, dict[str, str]]], ...] = (
    (
        "en_route",
        "前往现场",
        "On the way",
        False,
        ("aed_collected", "arrived"),
        {
            "dispatcher": _t(
                "确认患者地址和入口；请呼叫者保持通话、打开门禁，并派人到门口接应志愿者。",
                "Confirm the address and the entrance; keep the caller on the line, ask them "
                "to open doors and send someone to meet the volunteers.",
            ),
            "cpr": _t(
                "直接前往患者身边，注意交通安全。到达后点“已到达”。",
                "Go straight to the patient and mind the traffic. Tap “arrived” when you "
                "get there.",
            ),
            "aed": _t(
                "先去取 AED（位置和取用说明见任务），取到后点“已取到 AED”，再尽快送到患者身边。",
                "Fetch the AED first (its place and access note are in your task), tap “AED "
                "collected”, then bring it to the patient as fast as you safely can.",
            ),
        },
    ),
    (
        "check",
        "判断意识和呼吸",
        "Check responsiveness and breathing",
        False,
        ("arrived",),
        {
            "dispatcher": _t(
                "询问：“患者有反应吗？呼吸正常吗？”无反应且呼吸不正常（或只有叹息样呼吸），"
                "立即指导胸外按压。",
                "Ask: “Does the person respond? Are they breathing normally?” No response and "
                "no normal breathing (or only gasping): start compression instructions now.",
            ),
            "cpr": _t(
                "确认环境安全。轻拍双肩并大声呼喊。观察胸部起伏不超过 10 秒：无反应、无呼吸"
                "或只有叹息样呼吸，就是心脏骤停，立即开始按压。",
                "Make sure the scene is safe. Tap both shoulders and shout. Watch the chest for "
                "no more than 10 seconds: no response and no normal breathing (or only "
                "gasping) is cardiac arrest: start compressions now.",
            ),
            "aed": _t(
                "到达后把 AED 放在患者头部旁边；若还没有人按压，先判断意识和呼吸并开始按压。",
                "On arrival put the AED beside the patient's head; if nobody is pushing yet, "
                "check responsiveness and breathing and start compressions.",
            ),
        },
    ),
    (
        "compressions",
        "胸外按压",
        "Chest compressions",
        True,
        ("cpr_started",),
        {
            "dispatcher": _t(
                "跟着节拍器数数：“一、二、三、四……”。提醒：用力、快速、让胸廓完全回弹；"
                "两人以上时每 2 分钟轮换按压者。",
                "Count along with the metronome: “one, two, three, four…”. Remind them: hard, "
                "fast, full recoil; with two or more rescuers swap every 2 minutes.",
            ),
            "cpr": _t(
                "患者仰卧在硬的平面上。一只手掌根放在胸部正中（胸骨下半部），另一只手叠在"
                "上面，手臂伸直，用身体重量垂直下压。频率每分钟 100-120 次，深度 5-6 厘米，"
                "每次按压后让胸廓完全回弹，尽量不要中断。跟着节拍器按压，开始后点“已开始按压”。",
                "Patient on their back on a firm surface. Heel of one hand in the centre of the "
                "chest (lower half of the breastbone), the other hand on top, arms straight: "
                "push straight down with your body weight. 100-120 per minute, 5-6 cm deep, "
                "let the chest come fully back up, keep pauses short. Push with the metronome "
                "and tap “CPR started”.",
            ),
            "aed": _t(
                "尽快把 AED 送到；到达后点“AED 已到达”。",
                "Bring the AED as fast as you can; tap “AED arrived” when you are there.",
            ),
        },
    ),
    (
        "aed_power_on",
        "打开 AED",
        "Switch the AED on",
        True,
        ("aed_arrived",),
        {
            "dispatcher": _t(
                "确认 AED 已打开并在语音提示；按压不要中断。",
                "Confirm the AED is on and talking; compressions must not stop.",
            ),
            "cpr": _t("继续按压，不要停。", "Keep pushing; do not stop."),
            "aed": _t(
                "把 AED 放在患者头部旁边，按电源键或打开盖子开机，按语音提示操作。",
                "Put the AED beside the patient's head, switch it on (power button or open the "
                "lid) and follow its voice prompts.",
            ),
        },
    ),
    (
        "attach_pads",
        "贴电极片",
        "Attach the pads",
        True,
        ("pads_attached",),
        {
            "dispatcher": _t(
                "指导贴片位置：右锁骨下方一片，左侧腋下一片；贴好后进入分析。",
                "Guide the placement: one pad below the right collarbone, one on the left side "
                "below the armpit; once attached, go on to the analysis.",
            ),
            "cpr": _t("贴电极片时继续按压。", "Keep pushing while the pads go on."),
            "aed": _t(
                "解开或剪开上衣，擦干胸部。按电极片上的图示粘贴：一片贴在右锁骨下方，一片贴"
                "在左侧腋下乳头外侧；插好导线，点“已贴电极片”。",
                "Bare the chest (cut the clothes if needed) and dry it. Place the pads as "
                "pictured: one below the right collarbone, one on the left side below the "
                "armpit; plug the connector in and tap “pads attached”.",
            ),
        },
    ),
    (
        "stand_clear",
        "离开患者，分析心律",
        "Stand clear: rhythm analysis",
        False,
        (),
        {"dispatcher": _CLEAR, "cpr": _CLEAR, "aed": _CLEAR},
    ),
    (
        "shock",
        "电击",
        "Shock",
        False,
        ("shock_delivered",),
        {
            "dispatcher": _t(
                "确认无人接触患者后再电击；若 AED 提示不需要电击，立即恢复按压。",
                "Make sure nobody touches the patient before the shock; if no shock is "
                "advised, resume compressions at once.",
            ),
            "cpr": _t(
                "不要接触患者；电击后立即恢复按压。",
                "Stay clear of the patient; resume compressions right after the shock.",
            ),
            "aed": _t(
                "AED 提示需要电击时：再次确认没有人接触患者，按下闪烁的电击按钮，然后点“已电击”。",
                "If the AED advises a shock: check again that nobody touches the patient, press "
                "the flashing shock button, then tap “shock delivered”.",
            ),
        },
    ),
    (
        "resume_compressions",
        "继续按压",
        "Resume compressions",
        True,
        ("rosc",),
        {
            "dispatcher": _t(
                "跟着节拍计数；每 2 分钟提醒轮换按压者，并按 AED 提示再次分析或电击。",
                "Count along; every 2 minutes remind them to swap and follow the AED's next "
                "analysis or shock.",
            ),
            "cpr": _t(
                "电击后（或不需要电击时）立即继续按压 2 分钟，不要取下电极片，AED 会再次分析。"
                "患者恢复正常呼吸或有动作时才停止，并点“恢复自主循环”。",
                "Straight after the shock (or when none is advised) push for 2 more minutes; "
                "keep the pads on, the AED will analyse again. Stop only if the patient "
                "breathes normally or moves, and tap “ROSC”.",
            ),
            "aed": _t(
                "与按压者每 2 分钟轮换；电极片保持贴好，按 AED 提示操作。",
                "Swap with the compressor every 2 minutes; keep the pads on and follow the "
                "AED's prompts.",
            ),
        },
    ),
    (
        "handover",
        "交接给急救人员",
        "Hand over to the ambulance crew",
        False,
        ("ems_arrived", "handed_over"),
        {
            "dispatcher": _t(
                "记录急救人员到达（ems_arrived），确认交接，感谢志愿者。",
                "Record the crew's arrival (ems_arrived), confirm the hand-over and thank the "
                "volunteers.",
            ),
            "cpr": _t(
                "继续按压直到急救人员接手。告诉他们：发现时间、开始按压时间、电击次数；"
                "交接后点“已交接”。",
                "Keep going until the crew takes over. Tell them when the patient was found, "
                "when compressions started and how many shocks were given; then tap “handed "
                "over”.",
            ),
            "aed": _t(
                "AED 和电极片留给急救人员；交接后点“已交接”。",
                "Leave the AED and its pads with the crew; tap “handed over” after the hand-over.",
            ),
        },
    ),
)

STEP_IDS = tuple(step[0] for step in _STEPS)
FIRST_STEP = STEP_IDS[0]


def build_protocol(cadence_per_min: int) -> dict[str, Any]:
    """The protocol as sent to clients, with the metronome's cadence (computed once)."""
    if not RATE_PER_MIN[0] <= cadence_per_min <= RATE_PER_MIN[1]:
        raise ValueError(f"cadence {cadence_per_min}/min is outside {RATE_PER_MIN}")
    steps = [
        {
            "id": step_id,
            "n": n,
            "title_zh": title_zh,
            "title_en": title_en,
            # The responder's text by default (the UI shows `text_<lang>` when it knows no role).
            **roles["cpr"],
            "roles": {role: dict(roles[role]) for role in ROLES},
            "metronome": metronome,
            "cadence_per_min": cadence_per_min if metronome else None,
            "markers": list(markers),
        }
        for n, (step_id, title_zh, title_en, metronome, markers, roles) in enumerate(_STEPS, 1)
    ]
    return {
        "id": PROTOCOL_ID,
        "version": PROTOCOL_VERSION,
        "title_zh": "成人心脏骤停",
        "title_en": "Adult cardiac arrest",
        "roles": list(ROLES),
        "first_step": FIRST_STEP,
        "metronome": {
            "cadence_per_min": cadence_per_min,
            "min_per_min": RATE_PER_MIN[0],
            "max_per_min": RATE_PER_MIN[1],
        },
        "compressions": {
            "rate_per_min": list(RATE_PER_MIN),
            "depth_cm": list(DEPTH_CM),
        },
        "steps": steps,
    }
