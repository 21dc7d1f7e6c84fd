package story

import "strings"

// Common words: the vocabulary every news story uses ("officials",
// "announced", "plant", "government") and the actors and terms of the
// trade and defence stream this monitor follows ("tariffs", "exports",
// "China", "ministry"). They are not stop words: "exports" and "China"
// say what an item is about. But they say little about which story it is,
// and an index can only learn that from its own document frequencies once
// it holds thousands of items: a fresh or small index would otherwise
// weigh "placed" or "crackdown", one outlet's choice of words, as much as
// "Piotech" or "Osiny", what two reports of one event share. A common word
// starts with a document frequency of commonDF (see rarity), as if the
// index had already seen that many items with it; the rest are taken to
// be rare until the index sees them.
//
// The lists are of folded words, cut to their stems as tokenize does, so
// one form of a word longer than four letters stands for all of them
// ("government" for "governments", "governor"); shorter words are listed
// in each form. CJK entries are split into character bigrams. No ordinal
// is listed: tokenize reads "fourth" as the number 4, which would make
// that number common.
const (
	// General English beyond the news wording above: the words of a
	// mid-sized dictionary's most frequent few thousand.
	commonEN2 = `
	abandon ability abroad absence absolute absorb abuse academic accept access accident
	accompany accord account accuse accused achieve acknowledge acquire acquisition acre acres
	active actor actual actually adapt additional adequate adjust admit adopt adult advantage
	adverse advice advise advocate affect afford afraid african age aged agent ages aggressive
	agriculture alarm alert alive alleged allegation alliance alternative amend amid ammunition
	analysis ancient angry animal anniversary annually anxious apart apparent apparently appeal
	appoint appointed appreciate approach appropriate arrange arrangement arrest arrested
	article artist aside aspect assault assess assessment assist assistance associate assume
	assure atmosphere attach attend attitude attract audience author automatic autumn
	aware awareness baby background badly bag balance ball ban bans banned banning banner
	barrel barrels basic battery beat beautiful bed begun behalf behavior behaviour belong
	beneath beside besides bid bids bidding billion bind birth blast blame blew blow blood
	blue boat boats bomb bombing bond bonds book books boom bottom boundary bowl box boy brain
	branch brand brave breach bread breakdown brief briefly bright brilliant broadcast broke
	broken brother brown brutal bus buses busy button cabinet calculate calm camera camp
	cancel cancelled candidate cap caps captain capture card career careful cargo carrier
	cash cast casualties catch category caught celebrate cell census century ceremony chair
	champion character charity chart cheap check chemical chemicals chest child children
	choice choose chose chosen church circle circumstance cite cited citizen citizens claims
	class classic clean climate clinic clock closure cloud club coal code coffee cold
	collapse colleague collect collection college colour color column combat combination
	combine comfort command commander commit commitment communication compete competition
	competitive complain complaint complex component components comprehensive compromise
	concept concentrate conclude concrete conduct confidence confident confront congress
	connect connection conscious consequence conservative consist constant constitution
	consult consumption contact contain contemporary content contest context contrast
	contribute contribution convention conversation convert convict convince cook cool
	cope copy core corner corporate correct corruption cotton counter couple courage cousin
	crash crashed crashes creature credit crew crime criminal critic criticism criticise
	criticize cross crowd crucial cry cultural culture cup curb curbs customer customers
	cycle daily dance danger dangerous dark daughter dead deadly deaf debt deep deeply
	defeat defend deficit define definitely degree delay delayed delays delegation deliberate
	democracy democrat democratic demonstrate deny depend deposit depth deputy describe
	desert deserve design desire desk destroy destroyed destruction detect determine device
	devote die died dies diet difference different digital dinner diplomat diplomatic dirty
	disaster discipline discover discuss discussion disease dismiss display dispute
	distance distinct distribute distribution district divide division doctor document dog
	dollar dollars door dose doubt dozen dozens dramatic dramatically draw drawn dream dress
	drink drug drugs dry dust eager ear earn ease easily easy eat edge edition editor
	educate education effectively efficient egg eight elderly elect electricity element
	eliminate elite else elsewhere embassy embrace emerge emphasis employ employee employees
	employer empty enable encounter encourage enemy engage engine engineer engineering
	enhance enjoy enormous entry episode equal equally equivalent era error escape
	especially essential essentially establishment estate estimate ethnic evaluate evident
	evil exact exactly exam examine examining exceed excellent except exchange excite
	exclude exclusive excuse exercise exhibition exist existence exit expense expensive
	experience experiment explain explanation explode exploded explodes explosion explore
	expose exposure express expression extent external extra extreme extremely eye eyes
	fabric facilitate factor fail failure fair fairly faith false familiar family famous fan
	fans farm farmer farmers fashion fat fate father fault favour favor favorite fear
	feature fee fees feed feel feeling fellow female fewer field fields fifty file
	fill film filter finally financing finding fine finger finish fish fit five fix flag
	flat flee flew flight flights float flood floor flow fly flying fold folk food foot
	football foreigner forest forever forget forgive formal formation formula forth fortune
	forum foundation fraction frame freedom frequent fresh friend friendly fuel fully
	fun function fundamental funeral furthermore gallery gap garden gas gate gather gave
	gender gene generate generation generous gentle genuine gift girl glad glass goods
	governor grab grade gradually grain grand grant grass grave gray grey grip gross
	guarantee guard guess guest guide guilty gun guns guy habit hair hall hang happen
	happened happy harbour harbor hat hate health healthy hear heard hearing heart heat
	heavily height hell hello hero hidden hide hill hire historic history hole holiday
	hollow holy honest honour honor hospital host hostage hot hotel household housing huge
	human humour hundred hundreds hungry hunt hurt husband ice ideal identify identity
	ignore ill illegal illness image imagine immediate immigrant immigration implement
	implication imply importance important impossible impression impressive incentive
	incident income incorporate increasingly incredible indeed index indicate indication
	individual indoor indoors industries inevitable infant infection inflation influence
	inform initiative injure injured injury inner innocent input inquiry inside insight
	insist inspection inspector install instance institute institution instruction
	instrument insurance intellectual intelligence intend intense intention interior
	internal interpret interview introduce invasion invest invite involve iron island
	isolated itself jail joke journal journalist journey judge judgment jump junior
	jury justice justify kid kids kill killed killing kind king kitchen knee knife knock
	knowledge label labour labor lack lady lake lakes land landing lane language laptop
	largely laugh layer lay lean learn learning lease leave lecture leg legacy legislation
	legitimate lend length lesson let lie life lift light lighting likewise link lip
	liquid listen literally literature little live lives living loan loans lock logic
	lonely lorry loud love lovely luck lunch machine machines mad magazine mail mainly
	maintain maintenance male mall man mandate manner manufacture manufacturer map margin
	marine mark marriage mass massive master match mate maximum mayor meal meaning meanwhile
	measurement meat mechanism medical medicine medium memory men mental mention menu mere
	merely message metal method mid midnight mild mile miles mind mine mines minimum minor
	minority mirror miss missing mistake mix mixed mixture mobile mode moderate modern modest
	moment monitor monthly mood moon moral mortgage mother motion motor mount mountain mouth
	movement movie multiple murder muscle museum music muslim mutual mystery naked narrative
	narrow nation native natural nature navy nearby nearly neat necessarily necessary neck
	negative negotiate negotiation negotiations neighbour neighbor neighbourhood nerve nervous
	net neutral newly newspaper nice night nobody nod noise nominate nomination none noon
	normal normally nose notably notice notion novel nowhere nuclear nurse nut obey object
	objective obligation observe obtain obvious obviously occasion occupy occur ocean odd
	offence offense offensive officially offshore often okay old older online onto opening
	operate opinion opponent opportunity oppose opposite option ordinary organisation
	organization organise organize origin original otherwise ought outcome outlook outside
	outstanding oven overseas owe pace pack page pain paint painting pair palace pale panel
	panic paper parent parents park partial participant participate particular particularly
	partly partnership passage passenger passion patient pattern pause peace peaceful peak
	pen penalty pension percentage perfect perfectly perform performance perhaps permission
	permit persuade phase phone photo photograph phrase physical pick picture piece pilot
	pink pipe pitch plain planet plastic plate platform plea pleasant please pleased pleasure
	pledge pledged plenty plot plus pocket poem poet poetry poison pole police poll pool
	poor pop popular population port ports portion portrait pose positive possess
	possession possibility possibly postpone pot potential pound pounds pour poverty
	practical practice practise praise pray precisely predict prefer pregnant premier
	premium presence preserve pretty prevent price pride priest primary principle principal
	print prior priority prison prisoner privacy prize probably procedure proceed
	proceeds profession professional professor profile profit profits progress prohibit
	prominent promise promote prompt proof proper properly property proportion prospect
	protection protest proud prove proved proven province provision pub publication publish
	published pull punishment pupil pure purpose pursue quality quantity queen quick quiet
	quite quote race racial radical radio rail railway rain raise raising random rank rapid
	rapidly rare rarely ratio raw reader reading realise realize reality really rear
	reasonable recall recession recognise recognize recommend recover recovery recruit
	red reduction refer reference reflect reform refugee refuse regard regarding regime
	register regret regular regularly regulation regulator regulators reject relate
	relation relationship relative relatively relax relevant relief religion religious rely
	remark remarkable remember remind remote removal remove rent repair repeat repeatedly
	replace reply represent representative republic republican reputation request rescue
	research resident resign resist resolution resolve resort resource resources respect
	respond responsibility responsible restaurant restore retail retain retire retreat
	reveal reverse revolution reward rich rid ride ring riot rise river road rock roll
	romantic roof room root rough round route routine row royal rubber ruin rural rush sad
	safe sail salary salt sample sanction sanctions satellite satisfy save saving scale
	scene schedule scheme scholar school science scientist scope score scream screen sea
	seal search season seat secret secretary section seed seize select self senate senator
	sense sensitive sentence separate sequence settle settlement seven severe severely sex
	shade shadow shake shame shape share shared shares sharing sheet shelf shell shelter
	shift shine shirt shock shoe shoot shooting shop shopping shore shortly shot shoulder
	shout shut sick sight sign signal silence silent silly silver simple simply sing single
	sister sit six skill skills skin sky sleep slide slight slightly slip slow slowly smart
	smell smile smoke smooth snow soft software soil soldier soldiers solid solution solve
	somebody somehow someone something sometimes somewhat somewhere son song soon sorry sort
	soul sound soup space spare speaker species specific specifically speech speed spend
	spirit split spokesman sport spot spread spring square stable staff stage stand
	standard star stare stated station status stay steady steal stick stock stomach stone
	store storm story straight strange stranger stream street strength stress stretch
	strict strike strikes striking string strip stroke struggle student studio study stuff
	stupid style submit substantial succeed success successful suddenly suffer sufficient
	sugar suit suitable sum summer summit sun super supporter suppose supreme surface
	surgery surprise surprised surprising surround survey survival survive suspect suspend
	suspended suspicion sustain swear sweep sweet swim switch symbol sympathy table tackle
	tail tale talent tall tank tanks tape task taste teach teacher teaching tear technical
	technique teenager telephone television temperature temporary temporarily tend tendency
	tension tent terrible territory terror terrorism terrorist testing text thank theatre
	theater theme theory therapy thick thin thing things think thinking thirty thought
	thousand thousands threat threaten threatened threatens throw thrown ticket tie tiny
	tip tired title tone tool tools tooth topic toss touch tough tour tourism tourist
	tower town track tradition traditional traffic train training transfer transform
	transition translate travel treat treatment tree trend trial trick trigger troops
	trouble truck trucks true truly trust truth tube twelve twenty twice typical typically
	ugly ultimately unable uncle understand understanding unemployment unfortunately union
	unique universe university unknown unlike unlikely unusual upper upset urban urge urged
	urgent useful usual usually vacuum valid valley valuable variety vast vehicle venture
	versus vessel vessels veteran victim victims victory video village violence violent
	virtually vision visitor vital voice volume voluntary volunteer voter voters vulnerable
	wage wages wait wake walk wall wander warm wash waste wave wealth wealthy weak weakness
	wear weather web website wedding weekend weigh weight welcome welfare wet wheel whilst
	whisper wife wild wildlife willing wind window windows wine wing winner winter wire
	wise wish witness woman women wonder wonderful wood wooden worry worse worst wound
	wrap write writer writing wrong yard yeah yellow yes young younger youth zone
	accelerate acquired advanced affected agreed allowing announces annoyed anybody applies
	approves attacks awards banks bars bears begins believed blocks boosts brings builds
	buys calls cares cases changes charges claims closes comes costs covers cuts deals
	decides delivers drops ends expands faces fails falls fears fights files finds fires
	follows forces gains gets gives goes grows hands heads helps hits holds hopes hours
	joins keeps kills knows launches leads leaves lets lifts lines links lists lives looks
	loses makes marks means meets moves names needs opens orders owns pays picks plans
	plays posts pulls pushes puts raises reaches remains reports returns rises rules runs
	sees sells sends sets shows signs sits stands starts stays steps stops takes talks
	tells tests tops turns uses visits waits walks wants warns wins works
	big bigger top low new old own mid tens lot lots bit way ways yet got gone went done
	did led met ran sat saw won lay hit set put cut let bid ban bar cap aid air arm art
	bad bag bed bit box boy bus car cash cut day die dog due ear eat end era eye fan far
	fat fee few fit fix fly fun gap gas god gun guy hat hot ice ill job key kid law lay
	leg lie lip lot low man map may men mix mob net nod non nor oil old pay pen pet pig pit
	pop pot raw red rid row run sad sea sex shy sit six sky son sum sun tax tea ten tie tip
	toe ton top toy try two use van war way web wet win yes zoo
	ago also area away back base bill body book call card care case city club cold cost
	crew date dead deal dear debt deep door draw drop duty east easy edge else even ever
	face fact fair fall farm fast fear feel felt file fill film find fine fire firm fish
	five flat flow food foot form four free fuel full fund gain game gave give glad goal
	gold gone good grew grow half hall hand hard head hear heat held help here hide high
	hill hold hole home hope host hour huge idea iron item join jump just keep kind king
	knew know lack lady laid land last late lead left less life lift like line link list
	live load loan lock long look lord lose loss lost love luck made mail main make male
	many mark mass meal mean meat meet mile mind mine miss mode more most move much must
	name near neck need news next nice nine none note once only open pace pack page paid
	pain pair park part pass past path peak pick plan play plot plus poll pool poor port
	post pull pure push race rail rain rank rare rate read real rely rent rest rice rich
	ride ring rise risk road rock role roll room root rose rule safe said sale same save
	seat seek seem seen self sell send sent ship shop shot show shut side sign site size
	skin slip slow snow soft soil sold sole some song soon sort spot star stay step stop
	such suit sure take tale talk tall tank task team tell tend term test text than that
	then they thin this thus tiny told tone took tool tour town tree trip true tune turn
	type unit upon used user vast very view vote wage wait wake walk wall want warm warn
	wash wave weak wear week well went were west what when wide wife wild will wind wine
	wing wire wise wish with wood word wore work yard year zero zone
	backs bans bids caps cuts hits jobs ties tops wars arms aims ends`
	commonEN = `
	able across act action actions activity add added adding adds address administration
	advance affect affairs afternoon age agency agencies agenda ago agree agreed agreement
	ahead aid aim aimed aims air aircraft airport allow allowed ally allies allied almost alone
	already alongside amount analyst announce announced announcement annual answer anti
	appear apply applied approach approval approve approved area areas arm arms army arrive
	ask asked assets attack attacked attempt attention authority authorities available
	average avoid award awarded away back bad bank banks bar bars barred barring base based
	basis battle bear became become becoming began begin beginning behind believe benefit
	best better big bigger biggest bill bills bit black block blocked board body border
	boost boosted bought break breaking bring broad brought budget build building built
	bureau business businesses buy buyer buys buying call called calls came campaign capacity capital
	care carry carried case cases cause caused center centre central certain chain chairman
	challenge chance change changed changes charge charged chief city civil claim claimed
	clear close closed closely coast come comes coming comment commerce commercial commission
	committee common community companies company compared complete completed concern concerns
	condition conference confirm confirmed conflict consider considered construction consumer
	continue continued contract contracts control controls cooperation cost costs could
	council count countries country course court cover covered crackdown create created crisis
	critical current currently customs cut cuts cutting damage data date deal deals dealing
	rare car cars vehicle vehicles electric
	deadline debate decade decades decide decided decision defence defense deliver delivered
	delivery demand department despite detail details develop developed development difficult
	direct directly director domestic double doubled draft drive drop dropped due duties duty
	earlier early earth earths east eastern economic economy effect effective effort efforts
	election emergency end ended energy enough ensure enter entire environment equipment
	escalation establish estimated europe european even evening event eventually every
	evidence example executive executives exempt exemption existing expand expanded expansion
	expect expected expects expert experts export exported exporter exporters exports extend
	extended face faced faces facing facility fact factory fail failed fall falling fell
	far fast federal fell fight figure figures final finance financial find fire firm firms
	fiscal fleet focus follow followed following force forced forces foreign form former
	forward found framework free friday front full fund funding funds future gain gains
	general get gets give given giving global go goal going good goods government governments
	great green ground group groups grow growing growth guidance half hand handed hard head
	heavy held help helped high higher highest hit hits hold holding home hope hour hours
	house huge idea immediately impact import imported importer importers imports impose
	imposed imposes imposing improve increase increased increasing independent industrial
	industry information infrastructure initial instead interest international investigation
	investment investments investor investors involved issue issued issues item items job jobs
	join joined joint keep key kind know known large largest late later latest launch launched
	law laws lead leader leaders leading led left legal less letter level levels levies levy
	licence licences license licenses likely limit limited limits line lines list listed local
	long look looking lose loss lost lot low lower main major majority maker makers making
	manage management manufacturing market markets material materials matter mean measure
	measures media meet meeting member members middle might military minister ministers
	ministry minute minutes mission model monday money month months morning move moved moves
	moving national nations nearly need needed needs network news next north northern note
	number numbers offer offered office officer officers official officials oil open opened
	operation operations operator opposition order ordered orders outlet output outside
	overall overnight owned owner package paid parliament part parts partner partners party
	pass passed past pay people period permanent person personnel place placed plan planned
	planning plans plant plants play point points policy political position possible post power
	powers prepare present president press pressure previous previously price prices prime
	private probe problem process processing produce produced producer producers product
	production products program programme project projects proposal proposed protect provide
	provided public purchase purchases push put quarter question quickly raise raised range
	rate rates rather reach reached reaction ready real reason receive received recent recently
	record reduce region regional related release released remain remained remains report
	require required requirement requirements response rest restrict restriction restrictions
	result results retaliation return revenue review right rights rise rising risk rival role
	rose rule rules run running safety sale sales saturday saw sector sectors secure
	security seek seeking seen sell selling send senior sent series serious service services
	set sets sharp sharply ship shipment shipments shipped shipping short show showed side
	sign signal signed significant signing similar since site situation size small social
	sold source sources south southern speak special spending spokesman spokeswoman spokesperson
	stake start started state statement states step steps still stop stopped strategic
	strategy strong structure subject suggest sunday supplier suppliers supply support
	sure system systems take taken takes taking talk talks target tariff tariffs tax team
	technologies technology term terms test thursday tight tighten tightened tightening top
	total toward towards trade trading transport treaty trip try trying tuesday turn turned
	type under unit units unless use used user using value various version view visit vote
	voted want war wars warn warned warning watch water way ways wednesday weapon weapons well
	west western whole wide wider widen win wins won word work worked worker workers working
	world worth written wrote
	january february march april may june july august september october november december
	jan feb mar apr jun jul aug sep sept oct nov dec
	china beijing chinese america american americans united washington europe eu brussels
	russia russian moscow ukraine ukrainian kyiv japan japanese tokyo germany german berlin
	france french paris britain british uk london india indian korea korean seoul taiwan
	taipei canada canadian ottawa mexico mexican nato un white kremlin pentagon g7 g20
	mr mrs ms dr us usa un`
	// Numbers that date more than they count: recent and coming years.
	// (Small numbers stay figures: "5%" and "7%" tell two trade reports
	// apart, even if "October 1" is then a figure too.)
	commonNum = `2015 2016 2017 2018 2019 2020 2021 2022 2023 2024 2025 2026 2027 2028 2029 2030 2031 2032 2033 2034 2035`
	commonDE  = `
	regierung bundesregierung bundes minister ministerin ministerium bundesminister kanzler
	deutschland deutsche deutschen deutscher europa europaische eu usa china chinesische
	russland ukraine unternehmen konzern firma firmen gruppe markt markte preis preise kauf
	kaufen plan plane neue neuen neuer land lander staat staaten
	euro dollar geld kosten milliardenschwer auftrag auftrage vertrag vertrage vereinbarung
	bundeswehr armee militar verteidigung rustung sicherheit export exporte import importe
	zoll zolle handel wirtschaft industrie produktion werk werke fabrik bau bauen projekt
	angaben berichtet erklarte kundigte angekundigt beschlossen beschluss entscheidung
	montag dienstag mittwoch donnerstag freitag samstag sonntag januar februar marz
	april mai juni juli august september oktober november dezember ab bereits rund
	mehr weitere weiteren grosste grossten anteil anteile aktie aktien bund lander`
	commonDE2 = `
	aktuell allerdings allein allgemein alt alte alten ander andere anderen anfang angebot
	angriff angriffe anlage anlagen ansicht antwort arbeit arbeiten arbeiter art aufgabe
	aufgaben auftrag ausland aussage aussagen ausserdem bahn bank banken bau bedeutung
	begann beginn beginnen behorde behorden beide beiden beispiel bekannt bekommt bekommen
	bereich bericht berichte berlin betrieb bevolkerung bewegung bezahlen bild bis bisher
	bleibt bleiben boden brauchen bringt bringen bucher burger chef dafur dagegen daher
	damals danach darauf daruber davon dazu deshalb dienst direkt drittel druck eigene
	eigenen einfach einige einigen einsatz ende endlich entwicklung erfolg ergebnis erhalt
	erhalten erklart erreichen erst erwartet fall falle familie fast fehlen feld fertig
	fest finden findet folge folgen frage fragen frau frauen fruher fuhrt fuhren ganz ganze
	geben gebiet gefahr gegenuber geht gehen gelten gemeinsam genau genug gerade gericht
	gesamt geschaft geschafte gesellschaft gesetz gestern gewinn gibt gilt gleich gleichzeitig
	gross grosse grossen grund gruppe gut gute haus hause heisst hilfe hoch hohe hohen immer
	insgesamt interesse jahre jahren jahrzehnt jeder jedoch jeweils kampf kaum kein keine
	kommen kommt konnen konnte kosten kraft krieg kunden kurz lage land lange lassen lauft
	leben leicht lesen leute liegen liegt macht machen mal mann mehrere meist meisten mensch
	menschen menge mitte mittel moglich moglichkeit monat monate monaten morgen mussen muss
	nachdem nachfrage nah nahe name neben nehmen niedrig niedrigen nimmt noch oft ort osten
	paar partei person personal platz politik politisch problem probleme punkt rahmen recht
	rede regel reihe richtung rolle ruck sache schnell schon schwer seite seiten sollte stadt
	stark starke stehen steht stelle stellen steigt steigen stunde stunden suchen system tag
	tage tagen teil teile tun uberall ubernahme ubernimmt umsatz unternehmen unterstutzung
	ursache verkauf verkauft verfahren vergangenen verhandlungen verlust viel viele vielen
	vier volk voll vorher vorjahr vorschlag wahl waren weg welt wenig weniger werk wert
	westen wichtig wieder wirtschaftlich wissen woche wochen wohl zahl zahlen zeit zeigt
	zeigen ziel ziele zudem zugleich zunachst zusammen zustimmen zwar erweitert
	erweitern kauft kaufte muessen mussen konzerns konzerne milliardenbereich einstelligen`
	commonFR2 = `
	actuellement afin ailleurs alors ancien ancienne annees appel apres arme armes article
	attaque aujourd aupres aussi autorites autre autres avance avoir base besoin bien bon
	bonne but capacite cas cause centre certains chaque chef chiffre choix cinq comite
	compte conditions conseil contre cours coup crise debut decision demande deja dernier
	derniere devant devrait direction dispositif doit donc donner dossier droit effet
	egalement emploi encore enfin ensemble entree environ etre exemple fois fonds forces
	forme fort forte gestion grace groupe guerre haut hausse heures homme hommes idee jour
	jours jusqu jusque langue lieu loi long lundi maintenant majeur manque mesure mesures
	milieu mise mois monde moment moyen moyens niveau nom nombre notamment objectif
	occasion ordre outre parce part partie passe pendant personne personnes petit petite
	peu peut peuvent place plan plupart politique porte possible pouvoir premier presque
	prendre pres prevu principal probleme processus produit produits public quelques
	question raison rapport recherche region reste resultat retour role rue sait sans
	secteur semaine service seul seulement societe soit sous souvent suite systeme tant tard
	temps toujours travail travaux trop type valeur ville vie voie voir vue zone grands
	nationale national international internationale mondial mondiale nouvel prochaine
	prochain hier mardi chaque doit pourrait selon`
	commonFR = `
	gouvernement ministre ministere president etat etats france francais francaise europe
	europeenne europeen ue chine chinois chinoise etats-unis americain americaine russie
	ukraine entreprise entreprises groupe marche marches prix projet projets contrat
	accord nouveau nouvelle nouveaux nouvelles premier pays euros dollars
	industrie production usine usines exportations importations droits douane douanes
	commerce economie defense armee militaire securite annonce annoncee lundi mardi
	mercredi jeudi vendredi samedi dimanche janvier fevrier mars avril mai juin juillet
	aout septembre octobre novembre decembre environ partir ainsi afin dont fin
	mise place grand grande plusieurs cadre face`
	// Chinese: the offices and the wording of notices; Japanese: the same,
	// as these bigrams would otherwise give every notice of one ministry
	// a dozen words in common.
	commonZH = `中国 美国 日本 欧盟 俄罗斯 政府 国家 企业 公司 发布 公告 宣布 表示 实施 进口 出口
	关税 商务部 海关总署 国务院 国务院关税税则委员会 外交部 市场监管总局 国家市场监督管理总局
	工业和信息化部 财政部 发展改革委 部门 市场 管理 监管 相关 物项 措施 决定 今年 去年 进行 开展
	合作 发展 国际 经济 贸易 产品 技术 管制 出口管制 两用物项 原产于 加征 自 月 日 起 年 依法
	有关 规定 根据 将 对 等 和 与 及 其 并 已 为 在 是 的 了 中方 美方 此前 目前 近日 当日
	记者 新华社 报道 消息 方面 问题 情况 工作 重要 全球 供应链 安全 国家安全 利益
	商务部和海关总署发布公告 商务部发布公告 海关总署公告 对相关物项实施出口管制 实施出口管制
	自公告之日起实施 自公布之日起施行 出口经营者 应当依照有关规定 申请许可 办理出口许可
	出口管制管控名单 不可靠实体清单 维护国家安全和利益 履行防扩散等国际义务 外交部发言人
	在现行适用关税税率基础上 加征关税 国务院关税税则委员会发布公告 反倾销调查 反补贴调查
	立案调查 依法 有关规定 表示 指出 强调 回应 坚决反对 采取必要措施`
	commonJA = `日本 中国 米国 政府 発表 経済 産業 経済産業省 経産省 企業 会社 輸出 輸入 規制 対象
	措置 関税 防衛 防衛省 外務省 首相 大臣 関係 方針 発表した 明らかにした 国内 海外 世界 今年 昨年
	年 月 日 同社 両国 両政府 協力 強化 確保 検討 決定 実施 開始 必要 可能性 表明 供給 安全保障`
)

// commonDF is the document frequency a common word starts with: about
// the rarity of a word a tenth of a day's items hold.
const commonDF = 24

// commonSet holds the token ids of the common words, as sign computes
// them: an open-addressing set, probed once per token of every item.
type commonSet struct {
	slots [commonSlots]uint64
}

const commonSlots = 1 << 12 // a power of two, above twice the words listed

func (s *commonSet) has(id uint64) bool {
	for i := (id * 0x9e3779b97f4a7c15) >> (64 - 12); ; i = (i + 1) & (commonSlots - 1) {
		switch s.slots[i] {
		case id:
			return true
		case 0:
			return false
		}
	}
}

func (s *commonSet) put(id uint64) {
	if id == 0 {
		return
	}
	i := (id * 0x9e3779b97f4a7c15) >> (64 - 12)
	for s.slots[i] != 0 && s.slots[i] != id {
		i = (i + 1) & (commonSlots - 1)
	}
	s.slots[i] = id
}

// commonWords is built by signing the lists themselves: whatever tokenize
// makes of a listed word is what it will make of the word in an item. It
// is set in init, not by an initialiser: tokenize asks it whether a word
// before a number is common (see modelNumber), which no word of the lists,
// read one at a time, needs while it is nil.
var commonWords *commonSet

func init() { commonWords = newCommonWords() }

func newCommonWords() *commonSet {
	s := &commonSet{}
	for _, l := range []struct{ words, lang string }{
		{commonEN, "en"}, {commonEN2, "en"}, {commonNum, "en"}, {commonDE, "de"}, {commonDE2, "de"}, {commonFR2, "fr"}, {commonFR, "fr"}, {commonZH, "zh"}, {commonJA, "ja"},
	} {
		for w := range strings.FieldsSeq(l.words) {
			for _, t := range tokenize(nil, w, l.lang, false, true) {
				s.put(t.id())
			}
		}
	}
	return s
}
