"""Where the synthetic demo puts things: per district, its share and its real-ish centres.

The coordinates are WGS-84 approximations of well-known places (squares, business districts,
industrial parks, stations), read off the district geometry; they are only centres around which
points are scattered, never a claim that a device or a person is at that spot.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Centre:
    """A cluster of workplaces: points fall around (lat, lng) with a Gaussian spread."""

    name: str
    lat: float
    lng: float
    sigma_m: float
    weight: float
    profile: str
    stations: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Landmark:
    """A fixed AED at a named place (a railway station, the airport)."""

    name: str
    venue_type: str
    lat: float
    lng: float
    level: int
    access_note: str
    owner_name: str
    address: str


@dataclass(frozen=True, slots=True)
class DistrictPlan:
    """How many AEDs a district gets and where they cluster."""

    adcode: str
    short: str
    aeds: int
    # Share of the district's AEDs scattered uniformly over its land (township clinics, schools).
    scatter: float
    centres: tuple[Centre, ...]
    roads: tuple[str, ...]
    streets: tuple[str, ...]
    landmarks: tuple[Landmark, ...] = ()


def _w(words: str) -> tuple[str, ...]:
    return tuple(words.split())


PLANS: tuple[DistrictPlan, ...] = (
    DistrictPlan(
        "370202",
        "市南",
        260,
        0.0,
        (
            Centre("五四广场", 36.062, 120.384, 900, 30, "cbd", ("五四广场", "芝泉路", "燕儿岛路")),
            Centre("中山路", 36.066, 120.318, 700, 18, "oldtown", ("人民会堂", "中山公园")),
            Centre("八大关", 36.053, 120.350, 700, 10, "leisure", ("太平角公园", "汇泉广场")),
            Centre("浮山所", 36.066, 120.405, 700, 12, "cbd", ("浮山所",)),
            Centre("延安三路", 36.071, 120.368, 800, 20, "urban", ("延安三路", "江西路")),
        ),
        _w(
            "香港中路 香港西路 东海西路 南京路 延安三路 山东路 中山路 福州南路 "
            "江西路 燕儿岛路 闽江路 太平路 广西路 湖北路 澳门路 莱阳路"
        ),
        _w("八大关 香港中路 金门路 珠海路 湛山 江苏路 八大峡 云南路 中山路 金湖路"),
        (
            Landmark(
                "青岛站 候车大厅",
                "transit",
                36.0646,
                120.3120,
                1,
                "进站安检口内侧服务台旁，客运值班员 24 小时值守",
                "中国铁路济南局集团 青岛站",
                "市南区泰安路2号",
            ),
            Landmark(
                "青岛站 出站通道",
                "transit",
                36.0641,
                120.3126,
                -1,
                "出站口客服中心旁",
                "中国铁路济南局集团 青岛站",
                "市南区泰安路2号",
            ),
        ),
    ),
    DistrictPlan(
        "370203",
        "市北",
        300,
        0.0,
        (
            Centre("台东", 36.083, 120.365, 800, 25, "urban", ("台东", "利津路", "泰山路")),
            Centre("市北中央商务区", 36.097, 120.380, 700, 20, "cbd", ("敦化路", "错埠岭")),
            Centre("四方", 36.108, 120.362, 900, 18, "urban", ("海泊河", "清江路", "双山")),
            Centre("浮山后", 36.098, 120.410, 800, 12, "urban", ("长沙路", "地铁大厦")),
            Centre("大港", 36.080, 120.323, 700, 10, "oldtown", ("内蒙古路",)),
            Centre("洛阳路", 36.125, 120.375, 900, 8, "industrial"),
        ),
        _w(
            "台东一路 威海路 辽宁路 延安路 登州路 敦化路 连云港路 重庆南路 四流南路 "
            "鞍山路 杭州路 开平路 周口路 哈尔滨路 洛阳路 辽阳西路"
        ),
        _w(
            "台东 辽宁路 延安路 登州路 宁夏路 敦化路 双山 浮山新区 四方 海伦路 "
            "兴隆路 水清沟 洛阳路 河西 合肥路 大港"
        ),
    ),
    DistrictPlan(
        "370213",
        "李沧",
        200,
        0.0,
        (
            Centre("李村", 36.155, 120.430, 900, 35, "urban", ("李村", "君峰路", "李村公园")),
            Centre("青岛北站", 36.172, 120.385, 900, 18, "urban", ("安顺路", "东郭庄")),
            Centre("楼山", 36.185, 120.395, 1000, 18, "industrial", ("振华路", "永平路")),
            Centre("世园", 36.190, 120.460, 1000, 10, "leisure"),
            Centre("九水", 36.165, 120.455, 900, 12, "urban", ("枣山路", "湘潭路")),
        ),
        _w(
            "京口路 书院路 黑龙江中路 九水东路 振华路 四流中路 金水路 青山路 夏庄路 "
            "巨峰路 永年路 重庆中路 广水路 静康路 峰山路"
        ),
        _w("振华路 永清路 永安路 兴华路 浮山路 李村 虎山路 楼山 湘潭路 九水 世园"),
        (
            Landmark(
                "青岛北站 B1 换乘大厅",
                "transit",
                36.1706,
                120.3750,
                -1,
                "地铁换乘通道入口客服中心旁",
                "中国铁路济南局集团 青岛北站",
                "李沧区静康路1号",
            ),
            Landmark(
                "青岛北站 二楼候车大厅",
                "transit",
                36.1710,
                120.3745,
                2,
                "检票口 A5 旁服务台，客运值班员 24 小时值守",
                "中国铁路济南局集团 青岛北站",
                "李沧区静康路1号",
            ),
            Landmark(
                "青岛北站 出站层",
                "transit",
                36.1702,
                120.3757,
                -1,
                "出站口东侧客服中心",
                "中国铁路济南局集团 青岛北站",
                "李沧区静康路1号",
            ),
        ),
    ),
    DistrictPlan(
        "370212",
        "崂山",
        200,
        0.02,
        (
            Centre("金家岭金融区", 36.100, 120.460, 900, 35, "cbd", ("苗岭路", "海川路")),
            Centre("海尔工业园", 36.120, 120.448, 1000, 30, "industrial", ("海尔路", "株洲路")),
            Centre("高科园", 36.125, 120.470, 900, 18, "tech", ("同安路", "科苑纬一路")),
            Centre("石老人", 36.096, 120.485, 900, 10, "leisure", ("石老人浴场", "麦岛")),
            Centre("沙子口", 36.110, 120.555, 1500, 4, "town"),
            Centre("北宅", 36.215, 120.565, 2000, 2, "town", ("北宅",)),
            Centre("王哥庄", 36.255, 120.650, 2000, 3, "town"),
            Centre("崂山风景区", 36.180, 120.630, 3000, 3, "scenic"),
        ),
        _w(
            "海尔路 香港东路 苗岭路 株洲路 深圳路 同安路 东海东路 松岭路 银川东路 "
            "海口路 崂山路 秦岭路 仙霞岭路 梅岭东路"
        ),
        ("中韩", "沙子口", "王哥庄", "北宅", "金家岭"),
    ),
    DistrictPlan(
        "370211",
        "黄岛",
        370,
        0.05,
        (
            Centre("长江路", 35.960, 120.190, 1500, 28, "urban", ("井冈山路", "武夷山路")),
            Centre("金沙滩", 35.975, 120.245, 1500, 8, "leisure", ("朝阳山",)),
            Centre("前湾港", 36.020, 120.180, 2000, 14, "industrial"),
            Centre("中德生态园", 36.010, 120.060, 2000, 10, "industrial"),
            Centre("珠山", 35.870, 119.990, 2000, 18, "urban", ("珠山路", "香江路")),
            Centre("灵山卫", 35.930, 120.100, 2000, 8, "urban", ("灵山卫", "嘉陵江路")),
            Centre("董家口", 35.600, 119.780, 2000, 5, "industrial", ("董家口火车站",)),
            Centre("古镇口", 35.770, 119.940, 2000, 3, "town", ("古镇口",)),
            Centre("海西湾", 36.015, 120.250, 1200, 6, "industrial"),
            Centre("王台", 35.925, 120.040, 2500, 5, "industrial"),
        ),
        _w(
            "长江中路 江山中路 井冈山路 黄河中路 淮河东路 嘉陵江路 前湾港路 香江路 "
            "灵山湾路 珠江路 庐山路 峨眉山路 武夷山路 滨海大道"
        ),
        _w(
            "黄岛 辛安 薛家岛 长江路 红石崖 灵珠山 珠海 隐珠 灵山卫 王台 珠山 滨海 "
            "铁山 张家楼 藏南 泊里 大场 琅琊 海青 六汪"
        ),
    ),
    DistrictPlan(
        "370214",
        "城阳",
        230,
        0.05,
        (
            Centre("城阳城区", 36.307, 120.397, 1500, 35, "urban", ("正阳中路", "城阳区政府")),
            Centre("流亭", 36.266, 120.374, 1500, 12, "urban", ("流亭", "双元路")),
            Centre("高新区", 36.280, 120.310, 2000, 18, "tech", ("青岛国际院士港",)),
            Centre("棘洪滩", 36.335, 120.290, 1500, 15, "industrial"),
            Centre("夏庄", 36.250, 120.440, 1500, 8, "town"),
            Centre("上马", 36.260, 120.260, 2000, 8, "industrial", ("红岛火车站",)),
        ),
        _w(
            "正阳路 长城路 春阳路 兴阳路 文阳路 崇阳路 仙山东路 锦宏东路 华贯路 "
            "宝源路 火炬路 青威路"
        ),
        ("城阳", "流亭", "夏庄", "惜福镇", "棘洪滩", "上马", "河套", "红岛"),
    ),
    DistrictPlan(
        "370215",
        "即墨",
        170,
        0.06,
        (
            Centre("即墨城区", 36.389, 120.447, 2000, 40, "urban"),
            Centre("蓝谷", 36.370, 120.660, 2000, 15, "tech", ("鳌山卫", "温泉东")),
            Centre("汽车产业新城", 36.440, 120.400, 2500, 25, "industrial"),
            Centre("龙山", 36.330, 120.380, 2000, 8, "industrial"),
            Centre("田横", 36.420, 120.890, 2500, 3, "town"),
        ),
        _w(
            "鹤山路 蓝鳌路 烟青路 振华街 天山二路 黄河二路 长江二路 嵩山二路 "
            "华山二路 岘山路 滨海大道"
        ),
        _w("环秀 潮海 通济 北安 龙山 龙泉 鳌山卫 温泉 大信 蓝村 灵山 段泊岚 移风店 田横 金口"),
    ),
    DistrictPlan(
        "370281",
        "胶州",
        110,
        0.1,
        (
            Centre("胶州城区", 36.285, 120.033, 2000, 40, "urban"),
            Centre("胶东国际机场", 36.362, 120.088, 1500, 6, "urban"),
            Centre("胶州经济技术开发区", 36.240, 120.050, 2500, 25, "industrial"),
            Centre("上合示范区", 36.330, 120.020, 2500, 15, "industrial"),
            Centre("李哥庄", 36.400, 120.140, 2500, 6, "town"),
        ),
        _w(
            "胶州东路 广州南路 兰州东路 扬州路 常州路 郑州东路 杭州路 北京东路 上海路 福州路 泉州路"
        ),
        _w("阜安 中云 三里河 九龙 北关 胶东 胶北 胶莱 李哥庄 铺集 里岔 洋河"),
        (
            Landmark(
                "青岛胶东国际机场 T1 出发层",
                "transit",
                36.3620,
                120.0880,
                3,
                "值机岛 C 旁问询台",
                "山东省机场管理集团 青岛国际机场",
                "胶州市胶东街道胶东国际机场",
            ),
            Landmark(
                "青岛胶东国际机场 到达层 行李提取厅",
                "transit",
                36.3614,
                120.0876,
                1,
                "5 号转盘旁立柱",
                "山东省机场管理集团 青岛国际机场",
                "胶州市胶东街道胶东国际机场",
            ),
            Landmark(
                "青岛胶东国际机场 隔离区 登机口",
                "transit",
                36.3626,
                120.0869,
                2,
                "B12 登机口旁",
                "山东省机场管理集团 青岛国际机场",
                "胶州市胶东街道胶东国际机场",
            ),
            Landmark(
                "青岛胶东国际机场 交通中心",
                "transit",
                36.3608,
                120.0888,
                -1,
                "地铁 8 号线换乘通道服务台",
                "山东省机场管理集团 青岛国际机场",
                "胶州市胶东街道胶东国际机场",
            ),
        ),
    ),
    DistrictPlan(
        "370283",
        "平度",
        75,
        0.15,
        (
            Centre("平度城区", 36.776, 119.988, 2500, 50, "urban"),
            Centre("平度经济开发区", 36.745, 120.020, 2500, 15, "industrial"),
            Centre("南村", 36.560, 120.140, 2500, 10, "town"),
            Centre("新河", 36.930, 119.740, 2500, 5, "town"),
            Centre("蓼兰", 36.600, 119.900, 2500, 5, "town"),
        ),
        ("红旗路", "胜利路", "人民路", "杭州路", "扬州路", "常州路", "青岛路", "苏州路", "北京路"),
        _w(
            "东阁 凤台 李园 同和 白沙河 南村 蓼兰 崔家集 明村 田庄 新河 店子 大泽山 "
            "旧店 云山 古岘 仁兆"
        ),
    ),
    DistrictPlan(
        "370285",
        "莱西",
        68,
        0.15,
        (
            Centre("莱西城区", 36.888, 120.526, 2500, 50, "urban"),
            Centre("莱西经济开发区", 36.860, 120.500, 2000, 15, "industrial"),
            Centre("姜山", 36.720, 120.470, 2500, 12, "town"),
            Centre("南墅", 37.050, 120.400, 2500, 4, "town"),
        ),
        ("烟台路", "威海路", "上海路", "石岛路", "青岛路", "重庆路", "文化路", "长广路", "黄海路"),
        _w("水集 望城 沽河 姜山 夏格庄 院上 日庄 南墅 河头店 店埠 马连庄"),
    ),
)

AED_COUNT = sum(plan.aeds for plan in PLANS)

# Venue mixes: relative weights of venue types around a centre of each profile.
PROFILES: dict[str, dict[str, float]] = {
    "cbd": {
        "office": 40, "mall": 14, "hotel": 9, "transit": 8, "government": 4, "hospital": 4,
        "public": 6, "sports": 3, "school": 4, "residential": 6, "factory": 2,
    },
    "urban": {
        "office": 20, "mall": 12, "hotel": 5, "transit": 7, "government": 7, "hospital": 7,
        "public": 7, "sports": 4, "school": 10, "residential": 15, "factory": 6,
    },
    "oldtown": {
        "office": 15, "mall": 10, "hotel": 14, "transit": 8, "government": 6, "hospital": 8,
        "public": 16, "sports": 2, "school": 8, "residential": 12, "factory": 1,
    },
    "leisure": {
        "public": 28, "hotel": 18, "sports": 12, "mall": 8, "office": 8, "residential": 12,
        "school": 6, "hospital": 3, "transit": 3, "government": 2,
    },
    "industrial": {
        "factory": 62, "office": 10, "transit": 2, "government": 4, "residential": 6,
        "school": 3, "hospital": 3, "public": 3, "mall": 3, "sports": 2, "hotel": 2,
    },
    "tech": {
        "office": 40, "factory": 25, "school": 10, "mall": 5, "residential": 6, "transit": 4,
        "government": 3, "sports": 3, "hotel": 2, "hospital": 2,
    },
    "town": {
        "factory": 20, "government": 16, "school": 16, "hospital": 10, "residential": 10,
        "mall": 8, "public": 8, "office": 6, "sports": 3, "transit": 3,
    },
    "scenic": {"public": 60, "hotel": 25, "transit": 5, "government": 10},
    "rural": {"government": 30, "school": 25, "hospital": 15, "factory": 20, "public": 10},
}  # fmt: skip
