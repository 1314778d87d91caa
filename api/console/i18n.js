// The console's words: Simplified Chinese by default, English on request.
export const WORDS = {
  "zh-CN": {
    brand: "雪亮 · 视频监控",
    logout: "退出",
    language: "English",
    "login.title": "登录",
    "login.key": "API 密钥",
    "login.submit": "登录",
    "login.failed": "密钥无效或已停用",
    "nav.wall": "事件墙",
    "wall.empty": "暂无事件",
    "wall.live": "实时",
    "action.acknowledge": "确认",
    "action.resolve": "解决",
    "action.false_alarm": "误报",
    "action.note": "备注",
    "status.new": "新事件",
    "status.acknowledged": "已确认",
    "status.resolved": "已解决",
    "status.false_alarm": "误报",
    "severity.high": "高",
    "severity.medium": "中",
    "severity.low": "低",
    "detail.back": "返回",
    "detail.snapshot": "快照",
    "detail.clip": "录像",
    "detail.timeline": "处理记录",
    "detail.custody": "调阅记录",
    "detail.when": "时间",
    "detail.who": "人员",
    "detail.what": "操作",
    "forbidden": "此账号无权访问该页面",
    "filter.site": "全部站点",
    "filter.type": "全部类型",
    "filter.status": "全部状态",
    "filter.start": "起始时间",
    "filter.end": "截止时间",
    "type.zone_intrusion": "区域入侵",
    "type.loitering": "徘徊",
    "type.crowd": "人员聚集",
    "type.line_crossing": "越线",
    "type.wrong_way": "逆行",
    "type.after_hours": "非营业时间活动",
    "type.illegal_parking": "违章停车",
    "type.abandoned_object": "遗留物品",
    "type.removed_object": "物品被移走",
    "type.video_loss": "视频丢失",
    "type.black_image": "黑屏",
    "type.overexposed_image": "画面过曝",
    "type.occlusion": "镜头遮挡",
    "type.frozen_frame": "画面冻结",
    "type.scene_change": "镜头移位",
    "type.defocus": "画面模糊",
    "type.storage_full": "存储已满",
    "type.spool_quarantine": "缓存文件异常",
    "type.alarm_panel": "报警主机报警",
  },
  en: {
    brand: "Xueliang · video surveillance",
    logout: "Log out",
    language: "中文",
    "login.title": "Log in",
    "login.key": "API key",
    "login.submit": "Log in",
    "login.failed": "The key is not valid or was revoked",
    "nav.wall": "Event wall",
    "wall.empty": "No events yet",
    "wall.live": "Live",
    "action.acknowledge": "Acknowledge",
    "action.resolve": "Resolve",
    "action.false_alarm": "False alarm",
    "action.note": "Note",
    "status.new": "New",
    "status.acknowledged": "Acknowledged",
    "status.resolved": "Resolved",
    "status.false_alarm": "False alarm",
    "severity.high": "High",
    "severity.medium": "Medium",
    "severity.low": "Low",
    "detail.back": "Back",
    "detail.snapshot": "Snapshot",
    "detail.clip": "Clip",
    "detail.timeline": "Timeline",
    "detail.custody": "Custody log",
    "detail.when": "When",
    "detail.who": "Who",
    "detail.what": "What",
    "forbidden": "This key may not open this page",
    "filter.site": "All sites",
    "filter.type": "All types",
    "filter.status": "Any status",
    "filter.start": "From",
    "filter.end": "Until",
    "type.zone_intrusion": "Zone intrusion",
    "type.loitering": "Loitering",
    "type.crowd": "Crowd",
    "type.line_crossing": "Line crossing",
    "type.wrong_way": "Wrong way",
    "type.after_hours": "After hours",
    "type.illegal_parking": "Illegal parking",
    "type.abandoned_object": "Abandoned object",
    "type.removed_object": "Removed object",
    "type.video_loss": "Video loss",
    "type.black_image": "Black picture",
    "type.overexposed_image": "Overexposed",
    "type.occlusion": "Lens blocked",
    "type.frozen_frame": "Frozen picture",
    "type.scene_change": "Camera moved",
    "type.defocus": "Out of focus",
    "type.storage_full": "Storage full",
    "type.spool_quarantine": "Spool file quarantined",
    "type.alarm_panel": "Alarm panel",
  },
};

export function language() {
  return localStorage.getItem("language") === "en" ? "en" : "zh-CN";
}

export function t(key) {
  return WORDS[language()][key] ?? WORDS["zh-CN"][key] ?? key;
}

// An event type's name; a type this console does not know yet shows as it is.
export function typeName(type) {
  const key = `type.${type}`;
  return key in WORDS[language()] ? WORDS[language()][key] : type;
}

export function translate(root) {
  for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  document.documentElement.lang = language();
}

// A time in a site's time zone, written the language's way.
export function localTime(iso, timeZone) {
  return new Date(iso).toLocaleString(language(), { timeZone: timeZone || "Asia/Shanghai" });
}
