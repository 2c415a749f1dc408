"""Custody events in plain words, Chinese and English, for the court report.

A judge reads "从设备 A123456 复制文件 RECORD/…，SHA-256 …", not `copied {"device_serial": …}`. Each CustodyKind
has one sentence per language, filled from the event's details; times in the details are shown in agency local
time beside UTC (catalog.report_values), a stamp revision lists each changed field as old → new. The table is
total: tests/catalog/test_court_report.py fails when a kind is added without words. Pure.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from catalog.custody import CustodyKind
from catalog.report_values import Values
from catalog.sensitivity import label

__all__ = ["event_name", "event_sentence", "has_words", "stamp_changes", "stamp_value"]

K = CustodyKind
_WORDS: dict[CustodyKind, tuple[str, str]] = {
    K.DOCKED: ("设备 {device_serial} 接入采集站 {station}（设备档案 {profile}）",
               "Device {device_serial} docked at station {station} (profile {profile})"),
    K.COPIED: ("从设备 {device_serial} 复制文件 {device_path}（{size_bytes} 字节）并计算 SHA-256：{sha256}",
               "Copied {device_path} ({size_bytes} bytes) off device {device_serial} and computed its SHA-256: "
               "{sha256}"),
    K.SIGHTED: ("在设备 {device_serial} 的 {device_path} 再次发现相同文件（SHA-256 相同，不重复入库）",
                "The same bytes seen again on device {device_serial} at {device_path} (same SHA-256, not stored "
                "twice)"),
    K.ARCHIVED: ("写入防篡改（WORM）存储 {store}，保存至 {retain_until}，规则：{rule}",
                 "Written to WORM storage {store}, retained until {retain_until} (rule: {rule})"),
    K.VERIFIED: ("核验存储副本与入库时的 SHA-256 一致（{how}）",
                 "The stored copy verified equal to the SHA-256 taken at ingest ({how})"),
    K.MANIFESTED: ("签署第 {revision} 版证据清单并写入 WORM 存储（签名密钥指纹 {key_fingerprint}）",
                   "Signed manifest revision {revision} written to WORM storage (key fingerprint {key_fingerprint})"),
    K.KEY_REGISTERED: ("登记采集站 {station} 的签名公钥（指纹 {fingerprint}）",
                       "Signing key of station {station} registered (fingerprint {fingerprint})"),
    K.ROOT_KEY_CREATED: ("创建机构根密钥 {name}（指纹 {fingerprint}）",
                         "Agency root key {name} created (fingerprint {fingerprint})"),
    K.KEY_CERTIFIED: ("根密钥为 {role} 密钥 {subject} 签发证书（指纹 {fingerprint}，"
                      "有效期 {not_before} 至 {not_after}）",
                      "The root certified the {role} key {subject} (fingerprint {fingerprint}, valid {not_before} "
                      "to {not_after})"),
    K.KEY_REVOKED: ("自 {effective_at} 起吊销密钥 {fingerprint}（{role} {subject}），理由：{reason}",
                    "Key {fingerprint} ({role} {subject}) revoked from {effective_at}; reason: {reason}"),
    K.KEY_ROTATED: ("采集站 {station} 更换签名密钥：{fingerprint} → {new_fingerprint}（自 {effective_at} 起）",
                    "Station {station} changed its signing key: {fingerprint} → {new_fingerprint} (from "
                    "{effective_at})"),
    K.STAMPED: ("首次证据标识：案件编号 {case_number}，证明对象 {purpose}，采集人 {collector}，重要标记 {important}",
                "First evidence stamp: case {case_number}, purpose {purpose}, collector {collector}, important "
                "{important}"),
    K.RESTAMPED: ("修改证据标识（第 {revision} 版），理由：{reason}。{changes}",
                  "Evidence stamp revised (revision {revision}); reason: {reason}. {changes}"),
    K.ACCESSED: ("调阅原始文件（{what}，{via}），事由：{reason}", "Original read ({what}, {via}); reason: {reason}"),
    K.VIEWED: ("查看目录信息（{via}），事由：{reason}", "Catalogue entry viewed ({via}); reason: {reason}"),
    K.ACCESS_REFUSED: ("拒绝访问（{action}）：{why}", "Access refused ({action}): {why}"),
    K.EXPORTED: ("导出到证据包 {package}，事由：{reason}", "Exported in evidence package {package}; reason: {reason}"),
    K.RETENTION_CHANGED: ("保存期限变更：{old} → {new}，规则：{rule}",
                          "Retention changed: {old} → {new} (rule: {rule})"),
    K.LEGAL_HOLD: ("诉讼保全{on}：{reasons}", "Legal hold {on}: {reasons}"),
    K.DISPOSED: ("按规则销毁（{rule}；操作人 {operator}，批准人 {approver}）",
                 "Disposed under the rule ({rule}; operator {operator}, approver {approver})"),
    K.INGEST_FAILED: ("文件 {file} 未能保存（{stage}）：{reason}",
                      "File {file} could not be preserved ({stage}): {reason}"),
    K.UNDOCKED: ("设备断开：发现文件 {files_seen} 个，新入库 {files_new} 个，已有 {files_known} 个，"
                 "失败 {files_failed} 个",
                 "Device undocked: {files_seen} files seen, {files_new} new, {files_known} known, {files_failed} "
                 "failed"),
    K.CLEARED: ("存档副本核验无误后，删除设备 {device_serial} 上的 {device_path}",
                "After the archived copy was verified, {device_path} was deleted from device {device_serial}"),
    K.CASE_OPENED: ("立案 {case}：{title}（{case_type}，立案日期 {opened_on}）",
                    "Case {case} opened: {title} ({case_type}, opened {opened_on})"),
    K.CASE_LINKED: ("关联到案件 {case}，证明对象：{purpose}", "Linked to case {case}; purpose: {purpose}"),
    K.CASE_UNLINKED: ("与案件 {case} 解除关联，理由：{reason}", "Unlinked from case {case}; reason: {reason}"),
    K.CASE_CLOSED: ("案件 {case} 结案（{closed_on}）", "Case {case} closed ({closed_on})"),
    K.CASE_REOPENED: ("案件 {case} 重新开启，理由：{reason}", "Case {case} reopened; reason: {reason}"),
    K.CASE_ACTION_RECORDED: ("案件 {case} 登记执法事项 {type}（{start} 至 {end}，来源：{source}，第 {revision} 版）",
                             "Action {type} of case {case} recorded ({start} to {end}; source: {source}; revision "
                             "{revision})"),
    K.DOCUMENT_ATTACHED: ("书面材料 {name} 归入案件 {case}（SHA-256 {sha256}）",
                          "Document {name} attached to case {case} (SHA-256 {sha256})"),
    K.DISPOSAL_PROPOSED: ("第 {batch} 批销毁清单列出到期材料 {items} 项，待批准",
                          "Disposal batch {batch} lists {items} item(s) due, awaiting approval"),
    K.DISPOSAL_APPROVED: ("第 {batch} 批销毁获批准（提出人 {proposed_by}）",
                          "Disposal batch {batch} approved (proposed by {proposed_by})"),
    K.DISPOSAL_FAILED: ("第 {batch} 批销毁未执行（{result}）：{reason}",
                        "Disposal batch {batch} not carried out for this item ({result}): {reason}"),
    K.DISPOSAL_RECORDED: ("第 {batch} 批销毁记录已签名并写入 WORM 存储",
                          "The signed record of disposal batch {batch} was written to WORM storage"),
    K.FIXITY_FAILED: ("完整性检查发现问题（{how}）：{problems}", "A fixity check found problems ({how}): {problems}"),
    K.USER_CHANGED: ("用户 {user} 变更（{action}）", "User {user} changed ({action})"),
    K.REGISTRY_CHANGED: ("登记信息变更：{details}", "Registry record changed: {details}"),
    K.SIGNED_IN: ("登录（{source}）", "Signed in ({source})"),
    K.SIGN_IN_FAILED: ("登录失败（{reason}）", "Sign-in failed ({reason})"),
    K.SIGNED_OUT: ("退出登录", "Signed out"),
    K.SPOT_CHECK_DRAWN: ("抽检第 {check} 次：从 {population} 项中随机抽取",
                         "Spot check {check} drawn from {population} item(s)"),
    K.REVIEWED: ("抽检复核（第 {check} 次）结论：{outcome}（{notes}）",
                 "Spot check {check} reviewed: {outcome} ({notes})"),
    K.SPOT_CHECK_SIGNED: ("第 {check} 次抽检由复核人签署完成（发现问题 {findings} 项），签名结果已写入 WORM 存储",
                          "Spot check {check} signed off by its reviewer ({findings} finding(s)); the signed result is "
                          "in WORM storage"),
    K.VERIFICATION_RUN: ("运行核验：文件 {recordings} 个，事件 {events} 个，发现问题 {problems} 个",
                         "Verification run: {recordings} file(s), {events} event(s), {problems} problem(s)"),
    K.INTEGRITY_CHECKED: ("解码完整性检查（{check}）：{was} → {now}（{detail}）",
                          "Decoding integrity check ({check}): {was} → {now} ({detail})"),
    K.REDACTED: ("对第 {original_id} 号原始记录（SHA-256 {original_sha256}）作遮蔽处理，生成第 {version} 版处理件"
                 "（SHA-256 {sha256}，{size_bytes} 字节；遮蔽区域 {boxes} 处，静音区间 {mutes} 段），理由：{reason}；"
                 "原件未改动",
                 "Redacted copy version {version} of recording {original_id} (original SHA-256 {original_sha256}) "
                 "made (SHA-256 {sha256}, {size_bytes} bytes; {boxes} region(s) hidden, {mutes} range(s) muted); "
                 "reason: {reason}; the original is unchanged"),
    K.RELEASE_PROPOSED: ("申请{kind}（第 {release} 号，接收方：{recipient}，依据：{legal_basis}），事由：{reason}",
                         "Proposed for {kind} (release {release}, to {recipient}, on {legal_basis}); reason: {reason}"),
    K.RELEASE_APPROVED: ("法制审核通过第 {release} 号{kind}（{note}）；签名决定已写入 WORM 存储",
                         "Legal review approved release {release} ({kind}; {note}); the signed decision is in WORM "
                         "storage"),
    K.RELEASE_REJECTED: ("法制审核未通过第 {release} 号{kind}（{note}）；签名决定已写入 WORM 存储",
                         "Legal review rejected release {release} ({kind}; {note}); the signed decision is in WORM "
                         "storage"),
    K.RELEASE_WITHDRAWN: ("撤回第 {release} 号{kind}，理由：{reason}；签名记录已写入 WORM 存储",
                          "Release {release} ({kind}) withdrawn; reason: {reason}; the signed record is in WORM "
                          "storage"),
    K.SHARE_CREATED: ("为第 {release} 号发布向 {recipient} 生成分享链接 {link}（至 {expires_at}）",
                      "Share link {link} of release {release} made for {recipient} (until {expires_at})"),
    K.SHARE_OPENED: ("{recipient} 以一次性验证码打开分享链接 {link}",
                     "{recipient} opened share link {link} with its code"),
    K.SHARE_DOWNLOADED: ("{recipient} 通过分享链接 {link} 下载（{bytes}）",
                         "{recipient} downloaded through share link {link} ({bytes})"),
    K.SHARE_REVOKED: ("撤销分享链接 {link}（{recipient}），理由：{reason}",
                      "Share link {link} ({recipient}) revoked; reason: {reason}"),
    K.SNAPSHOT_TAKEN: ("截取 {at_s} 秒处画面，作为第 {still_id} 号材料归入案件 {case}（SHA-256 {still_sha256}），"
                       "事由：{reason}",
                       "Still of the frame at {at_s} s kept as item {still_id} of case {case} (SHA-256 "
                       "{still_sha256}); reason: {reason}"),
    K.DEVICE_CLOCK_SET: ("校时：向设备 {device_serial} 写入工作站时间 {written}（{zone}，{file}）；写入前设备时钟"
                         "{offset_before_s}",
                         "Clock set: the station's time {written} ({zone}, {file}) written to device {device_serial}; "
                         "before, its clock was {offset_before_s}"),
    K.CLASSIFIED: ("敏感类别由 {from} 改为 {to}，理由：{reason}",
                   "Sensitivity class changed from {from} to {to}; reason: {reason}"),
    K.ACCESS_GRANTED: ("授权 {user} 调阅案件 {case} 的涉密/敏感材料（至 {expires_at}），理由：{reason}",
                       "{user} granted access to the classed items of case {case} (until {expires_at}); reason: "
                       "{reason}"),
    K.ACCESS_REVOKED: ("撤销 {user} 对案件 {case} 的调阅授权，理由：{reason}",
                       "Access of {user} to case {case} revoked; reason: {reason}"),
    K.DISCARDED: ("按设备档案未复制的衍生文件：{files}",
                  "Derivative files not copied, as the device profile says: {files}"),
    K.POLICY_ADOPTED: ("采用保存期限政策（指纹 {fingerprint}）：{terms}；事由：{reason}",
                       "Retention policy adopted (fingerprint {fingerprint}): {terms}; reason: {reason}"),
}

#: Each kind's name, (Chinese, English): what the audit log's event column says.
_NAMES: dict[CustodyKind, tuple[str, str]] = {
    K.DOCKED: ("设备接入", "docked"), K.COPIED: ("复制入库", "copied"), K.SIGHTED: ("再次发现", "seen again"),
    K.ARCHIVED: ("写入存储", "archived"), K.VERIFIED: ("核验一致", "verified"),
    K.MANIFESTED: ("签署清单", "manifest signed"),
    K.KEY_REGISTERED: ("登记公钥", "key registered"), K.ROOT_KEY_CREATED: ("创建根密钥", "root key created"),
    K.KEY_CERTIFIED: ("签发证书", "key certified"), K.KEY_REVOKED: ("吊销密钥", "key revoked"),
    K.KEY_ROTATED: ("更换密钥", "key rotated"), K.STAMPED: ("首次标识", "stamped"),
    K.RESTAMPED: ("修改标识", "stamp revised"), K.ACCESSED: ("调阅原件", "original read"),
    K.VIEWED: ("查看信息", "viewed"), K.ACCESS_REFUSED: ("拒绝访问", "access refused"),
    K.EXPORTED: ("导出", "exported"), K.RETENTION_CHANGED: ("保存期限变更", "retention changed"),
    K.LEGAL_HOLD: ("诉讼保全", "legal hold"), K.DISPOSED: ("销毁", "disposed"),
    K.INGEST_FAILED: ("入库失败", "ingest failed"), K.UNDOCKED: ("设备断开", "undocked"),
    K.CLEARED: ("清除设备文件", "cleared from device"), K.CASE_OPENED: ("立案", "case opened"),
    K.CASE_LINKED: ("关联案件", "linked to case"), K.CASE_UNLINKED: ("解除关联", "unlinked from case"),
    K.CASE_CLOSED: ("结案", "case closed"), K.CASE_REOPENED: ("重新开启案件", "case reopened"),
    K.CASE_ACTION_RECORDED: ("登记执法事项", "case action recorded"),
    K.DOCUMENT_ATTACHED: ("归入书面材料", "document attached"), K.DISPOSAL_PROPOSED: ("提出销毁", "disposal proposed"),
    K.DISPOSAL_APPROVED: ("批准销毁", "disposal approved"), K.DISPOSAL_FAILED: ("销毁未执行", "disposal failed"),
    K.DISPOSAL_RECORDED: ("销毁记录", "disposal recorded"), K.FIXITY_FAILED: ("完整性异常", "fixity failed"),
    K.USER_CHANGED: ("用户变更", "user changed"), K.REGISTRY_CHANGED: ("登记信息变更", "registry changed"),
    K.SIGNED_IN: ("登录", "signed in"), K.SIGN_IN_FAILED: ("登录失败", "sign-in failed"),
    K.SIGNED_OUT: ("退出登录", "signed out"), K.SPOT_CHECK_DRAWN: ("抽检抽取", "spot check drawn"),
    K.REVIEWED: ("抽检复核", "reviewed"), K.SPOT_CHECK_SIGNED: ("抽检签署", "spot check signed off"),
    K.VERIFICATION_RUN: ("运行核验", "verification run"),
    K.INTEGRITY_CHECKED: ("解码检查", "integrity checked"), K.DISCARDED: ("未复制衍生文件", "discarded"),
    K.POLICY_ADOPTED: ("采用保存政策", "policy adopted"), K.CLASSIFIED: ("变更敏感类别", "classified"),
    K.ACCESS_GRANTED: ("授权调阅", "access granted"), K.ACCESS_REVOKED: ("撤销授权", "access revoked"),
    K.REDACTED: ("遮蔽处理", "redacted"), K.RELEASE_PROPOSED: ("申请发布", "release proposed"),
    K.RELEASE_APPROVED: ("法制审核通过", "release approved"),
    K.RELEASE_REJECTED: ("法制审核未通过", "release rejected"),
    K.RELEASE_WITHDRAWN: ("撤回发布", "release withdrawn"), K.SHARE_CREATED: ("生成分享链接", "share link made"),
    K.SHARE_OPENED: ("打开分享链接", "share link opened"), K.SHARE_DOWNLOADED: ("分享下载", "downloaded by share link"),
    K.SHARE_REVOKED: ("撤销分享链接", "share link revoked"), K.SNAPSHOT_TAKEN: ("截取画面", "still taken"),
    K.DEVICE_CLOCK_SET: ("校时", "device clock set"),
}


def event_name(kind: str, language: str) -> str:
    """The name of custody event kind *kind* in *language* ("zh" or "en"); an unknown kind is shown as it is. Pure."""
    try:
        zh, en = _NAMES[CustodyKind(kind)]
    except (ValueError, KeyError):
        return kind
    return en if language == "en" else zh


#: Detail keys that hold an instant, for every kind.
_TIME_KEYS = ("retain_until", "effective_at", "until", "not_before", "not_after", "disposed_at")
#: The stamp fields a revision can change: their names, (Chinese, English).
_FIELDS: dict[str, tuple[str, str]] = {
    "case_number": ("案件编号", "case number"), "purpose": ("证明对象", "purpose"),
    "collector": ("采集人", "collector"), "important": ("重要标记", "important"),
    "captured_start": ("采集时间", "capture time"), "lat": ("纬度", "latitude"), "lon": ("经度", "longitude"),
    "place_source": ("地点来源", "place source"),
}


def has_words(kind: CustodyKind) -> bool:
    return kind in _WORDS and kind in _NAMES


def stamp_value(field: str, value: Any, values: Values) -> str:
    """A stamp field's value as the report shows it (a capture time local and UTC, a flag as yes/no)."""
    if field == "captured_start":
        return values.when(value)
    if field == "place_source":
        return values.source(value)
    return values.plain(value)


def stamp_changes(changes: Any, values: Values) -> str:
    """A revision's changes ({field: {old, new}}) as "证明对象：A → B；…"."""
    if not isinstance(changes, dict) or not changes:
        return "—"
    parts = []
    for field, change in changes.items():
        old, new = (change.get("old"), change.get("new")) if isinstance(change, dict) else (None, change)
        name = values.pick(*_FIELDS.get(field, (field, field)))
        parts.append(f"{name}{values.pick('：', ': ')}{stamp_value(field, old, values)} → "
                     f"{stamp_value(field, new, values)}")
    return values.pick("；", "; ").join(parts)


def _retention(details: dict[str, Any], values: Values) -> dict[str, str]:
    return {"old": values.when(details.get("old")) if details.get("old") else values.label("none"),
            "new": values.when(details.get("new"))}


#: A release's kind in words, Chinese and English (catalog.releases.RELEASE_KINDS): every place that names one.
RELEASE_KIND_WORDS: dict[str, tuple[str, str]] = {"publication": ("公示", "publication"),
                                                  "transfer": ("移送", "transfer")}


_SPECIAL: dict[CustodyKind, Callable[[dict[str, Any], Values], dict[str, str]]] = {
    K.RESTAMPED: lambda d, v: {"changes": stamp_changes(d.get("changes"), v)},
    K.RETENTION_CHANGED: _retention,
    K.LEGAL_HOLD: lambda d, v: {"on": v.label("on" if d.get("on") else "off")},
    K.STAMPED: lambda d, v: {"important": v.yes_no(d.get("important"))},
    K.REGISTRY_CHANGED: lambda d, v: {"details": v.plain({k: x for k, x in d.items() if k != "row"})},
    K.POLICY_ADOPTED: lambda d, v: {"terms": _policy_terms(d.get("terms"), v)},
    K.SHARE_CREATED: lambda d, v: {"expires_at": v.when(d["expires_at"]) if d.get("expires_at") else "—"},
    K.ACCESS_GRANTED: lambda d, v: {"expires_at": v.when(d["expires_at"]) if d.get("expires_at")
                                    else v.pick("撤销为止", "revoked")},
    K.REDACTED: lambda d, v: {
        "boxes": str(len((d.get("spec") or {}).get("boxes") or [])) if isinstance(d.get("spec"), dict) else "—",
        "mutes": str(len((d.get("spec") or {}).get("mutes") or [])) if isinstance(d.get("spec"), dict) else "—"},
    K.DEVICE_CLOCK_SET: lambda d, v: {"offset_before_s": _clock_offset(d.get("offset_before_s"), v)},
    K.CLASSIFIED: lambda d, v: {side: v.pick(label(str(d.get(side)), "zh"), label(str(d.get(side)), "en"))
                                for side in ("from", "to")},
    **{kind: (lambda d, v: {"kind": v.pick(*RELEASE_KIND_WORDS.get(str(d.get("kind")), ("公示或移送", "release")))})
       for kind in (K.RELEASE_PROPOSED, K.RELEASE_APPROVED, K.RELEASE_REJECTED, K.RELEASE_WITHDRAWN)},
}


def _clock_offset(offset: Any, values: Values) -> str:
    """A measured clock offset (station minus device, seconds) in words: which way the device's clock was off."""
    if not isinstance(offset, (int, float)) or isinstance(offset, bool):
        return values.pick("未测量", "not measured")
    if offset == 0:
        return values.pick("与工作站一致", "the station's")
    if offset > 0:
        return values.pick(f"慢 {offset:g} 秒", f"{offset:g} s behind the station's")
    return values.pick(f"快 {-offset:g} 秒", f"{-offset:g} s ahead of the station's")


def _policy_terms(terms: Any, values: Values) -> str:
    if not isinstance(terms, dict):
        return values.plain(terms)
    kinds = ", ".join(f"{t.get('code')} {values.pick(str(t.get('years')) + ' 年', str(t.get('years')) + ' years')}"
                      if t.get("years") is not None else f"{t.get('code')} {values.pick('永久', 'permanent')}"
                      for t in terms.get("case_types") or [] if isinstance(t, dict))
    return values.pick(
        f"常规保存 {terms.get('routine_months')} 个月，时区 {terms.get('zone')}，案件类型 {kinds}，"
        f"销毁审批 {terms.get('disposal_approval')}",
        f"routine {terms.get('routine_months')} months, zone {terms.get('zone')}, case types {kinds}, "
        f"disposal approval {terms.get('disposal_approval')}")


class _Blank(dict[str, str]):
    """Details for str.format_map: a key the event does not carry reads as "—"."""

    def __missing__(self, key: str) -> str:
        return "—"


def event_sentence(event: dict[str, Any], values: Values) -> str:
    """The custody event (a line of events.jsonl) as one sentence in the report's language."""
    details = event.get("details") if isinstance(event.get("details"), dict) else {}
    assert isinstance(details, dict)
    try:
        kind = CustodyKind(str(event.get("kind")))
    except ValueError:
        return f"{event.get('kind')}: {values.plain(details)}"
    filled = _Blank({key: values.plain(value) for key, value in details.items()})
    filled.update({key: values.when(details[key]) for key in _TIME_KEYS if details.get(key)})
    if kind in _SPECIAL:
        filled.update(_SPECIAL[kind](details, values))
    return values.pick(*_WORDS[kind]).format_map(filled)
