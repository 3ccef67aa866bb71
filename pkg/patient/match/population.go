package match

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"unicode"
	"unicode/utf8"
)

// SynthMRNSystem is the identifier system of the MRN every generated record carries; like a
// real registry's MRN it differs between two registrations of one person, so a Matcher that
// compares generated records lists it in Config.IgnoredSystems.
const SynthMRNSystem = "https://pms.example/mrn"

// The other identifier systems Generate uses.
const (
	SynthNationalIDSystem = "urn:pms:synth:national-id"
	SynthInsuranceSystem  = "urn:pms:synth:insurance-member"
)

// culture is one naming tradition of the synthetic population.
type culture struct {
	name         string
	male, female []string
	family       []string
	script       string // "cyrillic", "greek" or "" (Latin)
	feminine     func(string) string
	phone        string // country prefix as dialled internationally
	streets      []string
	cities       []string
	weight       int
}

func fields(s string) []string { return strings.Fields(s) }

// cultures are drawn by weight; a registry in a European city with a mixed population.
var cultures = []culture{
	{name: "english", weight: 22, phone: "44",
		male:    fields("James John Robert Michael William David Richard Joseph Thomas Charles Christopher Daniel Matthew Anthony Andrew Edward Peter Samuel Benjamin Jonathan"),
		female:  fields("Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Margaret Emily Catherine Rebecca Victoria Abigail Eleanor Dorothy Amanda Caroline"),
		family:  fields("Smith Johnson Williams Brown Jones Miller Davis Wilson Taylor Clark Walker Wright Harris Lewis Robinson Hall Young King Green Baker Evans Hughes Edwards Turner Hill Cooper Ward Morris Wood Thompson"),
		streets: fields("High Station Church Victoria Green Manor Park Kings Queens Mill"), cities: fields("Leeds London Bristol York Leicester Norwich")},
	{name: "german", weight: 12, phone: "49",
		male:    fields("Jürgen Günter Stefan Klaus Matthias Andreas Thomas Michael Uwe Jörg Wolfgang Heinrich Lukas Felix Maximilian"),
		female:  fields("Ursula Monika Petra Sabine Katharina Birgit Gisela Brigitte Anja Susanne Jülide Käthe Lena Sophie Hannah"),
		family:  fields("Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schäfer Koch Bauer Richter Klein Wolf Schröder Neumann Schwarz Köhler Groß Weiß Krüger Möller Hoffmann Schulz Zimmermann"),
		streets: fields("Haupt Bahnhof Kirch Garten Schul Berg Linden Goethe"), cities: fields("Köln München Düsseldorf Lübeck Göttingen Würzburg")},
	{name: "spanish", weight: 10, phone: "34",
		male:    fields("José Juan Manuel Francisco Antonio Jesús Javier Carlos Miguel Alejandro Ignacio Enrique Pablo Sergio"),
		female:  fields("María Carmen Dolores Lucía Isabel Ana Pilar Rosario Concepción Mercedes Guadalupe Teresa Cristina Marta"),
		family:  fields("García Fernández González Rodríguez López Martínez Sánchez Pérez Gómez Martín Jiménez Ruiz Hernández Díaz Muñoz Álvarez Romero Navarro Torres Domínguez"),
		streets: fields("Mayor Real Alcalá Goya Serrano Velázquez"), cities: fields("Madrid Sevilla Málaga Córdoba Zaragoza")},
	{name: "russian", weight: 9, phone: "7", script: "cyrillic",
		male:     fields("Александр Дмитрий Сергей Андрей Алексей Михаил Иван Николай Евгений Юрий Владимир Максим Артём Павел Фёдор"),
		female:   fields("Елена Ольга Татьяна Наталья Екатерина Анастасия Светлана Мария Юлия Ирина Ксения Людмила Дарья"),
		family:   fields("Иванов Смирнов Кузнецов Попов Васильев Петров Соколов Михайлов Новиков Фёдоров Морозов Волков Алексеев Лебедев Семёнов Егоров Павлов Козлов Степанов Николаев Орлов Захаров Зайцев Соловьёв Борисов Яковлев Жуков Щербаков Чернышёв Юдин"),
		feminine: func(f string) string { return f + "а" },
		streets:  fields("Ленина Пушкина Гагарина Мира Садовая"), cities: fields("Москва Казань Самара Тверь")},
	{name: "greek", weight: 4, phone: "30", script: "greek",
		male:    fields("Γεώργιος Δημήτριος Κωνσταντίνος Ιωάννης Νικόλαος Παναγιώτης Χρήστος Βασίλειος Θεόδωρος"),
		female:  fields("Μαρία Ελένη Αικατερίνη Βασιλική Σοφία Αναστασία Δήμητρα Γεωργία"),
		family:  fields("Παπαδόπουλος Παπαδάκης Γεωργίου Οικονόμου Βασιλείου Νικολάου Καραγιάννης Ιωάννου Αντωνίου Μακρής Χατζής"),
		streets: fields("Ερμού Σταδίου Πατησίων Αθηνάς"), cities: fields("Αθήνα Θεσσαλονίκη Πάτρα")},
	{name: "chinese", weight: 8, phone: "86",
		male:    fields("Wei Lei Jun Hao Yu Chen Jie Tao Qiang Ming Bo Gang"),
		female:  fields("Fang Min Jing Yan Hui Xiu Ying Li Na Xia Mei Lan"),
		family:  fields("Wang Li Zhang Liu Chen Yang Huang Zhao Wu Zhou Xu Sun Ma Zhu Hu Guo He Lin Gao Luo"),
		streets: fields("Renmin Jiefang Zhongshan Heping"), cities: fields("Shanghai Chengdu Wuhan Xiamen")},
	{name: "arabic", weight: 8, phone: "20",
		male:    fields("Mohammed Ahmed Ali Omar Khalid Youssef Ibrahim Hassan Abdullah Mustafa Tariq Karim Samir"),
		female:  fields("Fatima Aisha Maryam Zainab Layla Noor Huda Amina Salma Rania Yasmin"),
		family:  fields("Al-Sayed Haddad Khalil Nasser Hamdan Mansour Saleh Aziz Rahman Qureshi Farouk Hussein Abdelrahman El-Masri"),
		streets: fields("Tahrir Nile Corniche Salah"), cities: fields("Cairo Alexandria Giza")},
	{name: "indian", weight: 8, phone: "91",
		male:    fields("Rahul Amit Sanjay Vikram Arjun Rohan Anil Suresh Rajesh Pradeep Karthik Venkatesh"),
		female:  fields("Priya Anjali Sunita Kavita Neha Pooja Deepa Lakshmi Divya Meera Shreya"),
		family:  fields("Sharma Patel Singh Kumar Gupta Reddy Iyer Nair Rao Desai Mehta Joshi Krishnan Menon Chatterjee"),
		streets: fields("Gandhi Nehru Station Temple"), cities: fields("Mumbai Pune Chennai Bangalore")},
	{name: "polish", weight: 6, phone: "48",
		male:    fields("Krzysztof Grzegorz Łukasz Wojciech Piotr Tomasz Paweł Michał Jakub Andrzej Stanisław"),
		female:  fields("Małgorzata Agnieszka Katarzyna Joanna Barbara Zofia Anna Magdalena Elżbieta"),
		family:  fields("Nowak Kowalski Wiśniewski Wójcik Kowalczyk Kamiński Lewandowski Zieliński Szymański Woźniak Dąbrowski Kozłowski Jankowski"),
		streets: fields("Długa Polna Leśna Słoneczna Krótka"), cities: fields("Kraków Łódź Wrocław Gdańsk Poznań")},
	{name: "nigerian", weight: 5, phone: "234",
		male:    fields("Chinedu Oluwaseun Emeka Adebayo Tunde Obinna Chukwuemeka Femi Ifeanyi"),
		female:  fields("Ngozi Chiamaka Funmilayo Adaeze Yetunde Folake Nkechi Amaka"),
		family:  fields("Okafor Adeyemi Okonkwo Balogun Eze Nwosu Ogunleye Adebayo Obi Afolabi Nwachukwu"),
		streets: fields("Broad Marina Allen Awolowo"), cities: fields("Lagos Ibadan Enugu Abuja")},
	{name: "turkish", weight: 5, phone: "90",
		male:    fields("Mehmet Mustafa Ahmet Ali Hüseyin Hasan İbrahim Murat Emre Burak"),
		female:  fields("Ayşe Fatma Emine Hatice Zeynep Elif Özlem Gülşen Merve"),
		family:  fields("Yılmaz Kaya Demir Şahin Çelik Yıldız Yıldırım Öztürk Aydın Özdemir Arslan Doğan Kılıç"),
		streets: fields("Atatürk İstiklal Cumhuriyet Bağdat"), cities: fields("İstanbul Ankara İzmir Bursa")},
	{name: "french", weight: 5, phone: "33",
		male:    fields("Jean Pierre Michel Philippe Alain Nicolas François Stéphane Julien Sébastien"),
		female:  fields("Marie Nathalie Isabelle Sylvie Catherine Françoise Hélène Céline Aurélie"),
		family:  fields("Martin Bernard Dubois Thomas Robert Richard Petit Durand Leroy Moreau Lefèvre Girard Fournier Mercier"),
		streets: fields("République Victor-Hugo Gambetta Pasteur"), cities: fields("Lyon Nantes Lille Besançon")},
	{name: "japanese", weight: 3, phone: "81",
		male:    fields("Hiroshi Takashi Kenji Yuki Daisuke Shota Haruto Ren"),
		female:  fields("Yuko Keiko Akiko Haruka Yui Sakura Aoi Emi"),
		family:  fields("Satō Suzuki Takahashi Tanaka Watanabe Itō Yamamoto Nakamura Kobayashi Katō Ōno"),
		streets: fields("Chuo Sakura Midori"), cities: fields("Osaka Kyoto Sapporo")},
}

// cultureWeight is the sum of the cultures' weights.
var cultureWeight = func() int {
	n := 0
	for _, c := range cultures {
		n += c.weight
	}
	return n
}()

// Duplicate kinds Generate injects (the names appear in a Truth's Kinds).
const (
	DupTypoFamily    = "typo-family"
	DupTypoGiven     = "typo-given"
	DupNickname      = "nickname"
	DupSwapDayMonth  = "swap-day-month"
	DupTypoDOB       = "typo-dob"
	DupNoDOB         = "missing-dob"
	DupNoPhone       = "missing-phone"
	DupNewPhone      = "changed-phone"
	DupNoEmail       = "missing-email"
	DupNewEmail      = "changed-email"
	DupTranslit      = "transliteration"
	DupFamilyChange  = "family-name-change"
	DupSwapNames     = "swapped-names"
	DupNoMiddle      = "missing-middle-name"
	DupDisplayOnly   = "display-name-only"
	DupMoved         = "moved"
	DupNoIdentifiers = "missing-identifiers"
)

var dupKinds = []string{DupTypoFamily, DupTypoGiven, DupNickname, DupSwapDayMonth, DupTypoDOB, DupNoDOB,
	DupNoPhone, DupNewPhone, DupNoEmail, DupNewEmail, DupTranslit, DupFamilyChange, DupSwapNames,
	DupNoMiddle, DupDisplayOnly, DupMoved, DupNoIdentifiers}

// Truth is what Generate knows about its records: Entity[i] is the person record i
// describes (records with the same entity are duplicates of each other), Kinds[i] the
// perturbations a duplicate record went through (empty for originals), and Household[i]
// the household the person lives in (members share an address, often a phone or an email).
type Truth struct {
	Entity    []int
	Household []int
	Kinds     [][]string
}

// SamePerson reports whether records i and j describe one person.
func (t Truth) SamePerson(i, j int) bool { return t.Entity[i] == t.Entity[j] }

// Generate draws n patient records, dupPct percent of them (rounded) duplicates of another
// record, deterministically from rng. Originals come from several naming traditions
// (Russian and Greek ones half the time in their own script), live in households (spouses,
// children and twins share an address and often a phone or email), and carry an MRN under
// SynthMRNSystem plus, for some, a national id and an insurance member id. Each duplicate is a
// re-registration of an original with one to three of the dupKinds perturbations. Records are
// shuffled; Truth says which belong together.
func Generate(rng *rand.Rand, n int, dupPct float64) ([]Person, Truth) {
	if n <= 0 {
		return nil, Truth{}
	}
	dups := int(float64(n)*dupPct/100 + 0.5)
	dups = max(0, min(dups, n-1))
	g := &generator{rng: rng}
	ps := make([]Person, 0, n)
	t := Truth{}
	for len(ps) < n-dups {
		for _, p := range g.household(n - dups - len(ps)) {
			t.Entity = append(t.Entity, len(ps))
			t.Household = append(t.Household, g.households)
			t.Kinds = append(t.Kinds, nil)
			ps = append(ps, p)
		}
	}
	originals := len(ps)
	for range dups {
		src := rng.IntN(originals)
		d, kinds := g.duplicate(ps[src], g.cult[src])
		ps = append(ps, d)
		t.Entity = append(t.Entity, t.Entity[src])
		t.Household = append(t.Household, t.Household[src])
		t.Kinds = append(t.Kinds, kinds)
	}
	for i := range ps {
		ps[i].Identifiers = append(ps[i].Identifiers, Identifier{System: SynthMRNSystem, Value: fmt.Sprintf("MRN%08d", i+1)})
	}
	rng.Shuffle(len(ps), func(i, j int) {
		ps[i], ps[j] = ps[j], ps[i]
		t.Entity[i], t.Entity[j] = t.Entity[j], t.Entity[i]
		t.Household[i], t.Household[j] = t.Household[j], t.Household[i]
		t.Kinds[i], t.Kinds[j] = t.Kinds[j], t.Kinds[i]
	})
	return ps, t
}

// generator carries the state of one Generate call.
type generator struct {
	rng        *rand.Rand
	households int
	cult       []int // culture index of every original, by record index
	serial     int
}

func (g *generator) pick(xs []string) string { return xs[g.rng.IntN(len(xs))] }
func (g *generator) chance(p float64) bool   { return g.rng.Float64() < p }

// household draws one to four people (never more than room) of one culture sharing an
// address: a first adult, perhaps a partner, perhaps children, rarely twins.
func (g *generator) household(room int) []Person {
	g.households++
	ci := 0
	for w := g.rng.IntN(cultureWeight); w >= cultures[ci].weight; ci++ {
		w -= cultures[ci].weight
	}
	c := cultures[ci]
	address := fmt.Sprintf("%d %s, %05d %s", 1+g.rng.IntN(200), g.street(c), g.rng.IntN(100000), g.pick(c.cities))
	phone := g.phone(c)
	family := g.pick(c.family)
	if c.name == "spanish" && g.chance(0.5) {
		family += " " + g.pick(c.family)
	}
	size := 1
	if r := g.rng.Float64(); r < 0.25 {
		size = 2
	} else if r < 0.35 {
		size = 3 + g.rng.IntN(2)
	}
	size = min(size, room)
	var out []Person
	var first Person
	used := map[string]bool{} // parents do not give two children one name
	for i := range size {
		p := g.person(c, family)
		for anyUsed(used, p.Given) {
			p = g.person(c, family)
		}
		p.Address = address
		switch {
		case i == 0:
			first = p
		case i == 1 && size == 2:
			if g.chance(0.5) { // partner of another family name
				for p = g.person(c, g.pick(c.family)); anyUsed(used, p.Given); {
					p = g.person(c, g.pick(c.family))
				}
				p.Address = address
			}
			p.DateOfBirth = g.dobNear(first.DateOfBirth, g.rng.IntN(9)-4)
		default: // children; two of them twins when the dice say so
			p.DateOfBirth = g.dobNear(first.DateOfBirth, 22+g.rng.IntN(15))
			if i == 3 && g.chance(0.5) {
				p.DateOfBirth = out[2].DateOfBirth

			}
		}
		if g.chance(0.6) {
			p.Phone = phone // the home phone
		}
		for _, n := range p.Given {
			used[n] = true
		}
		if i > 0 && first.Email != "" && g.chance(0.3) {
			p.Email = first.Email // a family email
		}
		out = append(out, p)
		g.cult = append(g.cult, ci)
	}
	return out
}

// anyUsed reports whether one of names is taken in the household already (a sibling's first
// name as a middle name would make siblings of one birthday look like one person).
func anyUsed(used map[string]bool, names []string) bool {
	for _, n := range names {
		if used[n] {
			return true
		}
	}
	return false
}

// person draws one person of culture c with the given family name (in c's script).
func (g *generator) person(c culture, family string) Person {
	female := g.chance(0.5)
	given := []string{g.pick(c.male)}
	gender := "male"
	if female {
		given, gender = []string{g.pick(c.female)}, "female"
		if c.feminine != nil {
			family = c.feminine(family)
		}
	}
	if (c.name == "english" || c.name == "german" || c.name == "french" || c.name == "spanish") && g.chance(0.35) {
		names := c.male
		if female {
			names = c.female
		}
		if middle := g.pick(names); middle != given[0] {
			given = append(given, middle)
		}
	}
	if c.script != "" && g.chance(0.5) { // registered from a Latin-script document
		family = romanise(family, c.script, 0)
		for i := range given {
			given[i] = romanise(given[i], c.script, 0)
		}
	}
	p := Person{Family: family, Given: given, Gender: gender, DateOfBirth: g.dob()}
	if g.chance(0.85) {
		p.Phone = g.phone(c)
	}
	if g.chance(0.75) {
		p.Email = g.email(p)
	}
	if g.chance(0.5) {
		p.Identifiers = append(p.Identifiers, Identifier{System: SynthNationalIDSystem, Value: g.code("NI", 9)})
	}
	if g.chance(0.6) {
		p.Identifiers = append(p.Identifiers, Identifier{System: SynthInsuranceSystem, Value: g.code("M", 10)})
	}
	return p
}

func (g *generator) street(c culture) string { return g.pick(c.streets) + " Street" }

// dob draws a date of birth between 1930 and 2024.
func (g *generator) dob() string {
	return fmt.Sprintf("%04d-%02d-%02d", 1930+g.rng.IntN(95), 1+g.rng.IntN(12), 1+g.rng.IntN(28))
}

// phone draws a number in one of the formats people write: international or national.
func (g *generator) phone(c culture) string {
	num := fmt.Sprintf("%d%08d", 2+g.rng.IntN(8), g.rng.IntN(100000000))
	if g.chance(0.5) {
		return "+" + c.phone + " " + num[:3] + " " + num[3:]
	}
	return "0" + num
}

// email derives an address from the name, transliterated, with a serial number that keeps
// different people apart.
func (g *generator) email(p Person) string {
	g.serial++
	local := strings.ReplaceAll(Transliterate(p.Given[0]), " ", "") + "." + strings.ReplaceAll(Transliterate(p.Family), " ", "")
	domains := []string{"example.com", "mail.example", "post.example.org", "inbox.example.net"}
	return fmt.Sprintf("%s%d@%s", local, g.serial%1000, g.pick(domains))
}

// code draws an identifier value: prefix plus digits.
func (g *generator) code(prefix string, n int) string {
	var b strings.Builder
	b.WriteString(prefix)
	for range n {
		b.WriteByte(byte('0' + g.rng.IntN(10)))
	}
	return b.String()
}

// duplicate re-registers p with one to three perturbations.
func (g *generator) duplicate(p Person, ci int) (Person, []string) {
	c := cultures[ci]
	d := p
	d.Given = append([]string(nil), p.Given...)
	d.Identifiers = append([]Identifier(nil), p.Identifiers...)
	k := 1 + g.rng.IntN(3)
	var kinds []string
	for range k {
		kind := g.pick(dupKinds)
		kinds = append(kinds, kind)
		switch kind {
		case DupTypoFamily:
			d.Family = g.typo(d.Family)
		case DupTypoGiven:
			d.Given[0] = g.typo(d.Given[0])
		case DupNickname:
			if alt := g.nickname(d.Given[0]); alt != "" {
				d.Given[0] = alt
			} else {
				d.Given[0] = g.typo(d.Given[0])
			}
		case DupSwapDayMonth:
			if dt, ok := parseDate(d.DateOfBirth); ok && dt.d <= 12 && dt.d != dt.m {
				d.DateOfBirth = fmt.Sprintf("%04d-%02d-%02d", dt.y, dt.d, dt.m)
			} else {
				d.DateOfBirth = g.typoDigit(d.DateOfBirth)
			}
		case DupTypoDOB:
			d.DateOfBirth = g.typoDigit(d.DateOfBirth)
		case DupNoDOB:
			d.DateOfBirth = ""
		case DupNoPhone:
			d.Phone = ""
		case DupNewPhone:
			d.Phone = g.phone(c)
		case DupNoEmail:
			d.Email = ""
		case DupNewEmail:
			g.serial++
			d.Email = fmt.Sprintf("%s%d@new.example", strings.ReplaceAll(Transliterate(d.Given[0]), " ", ""), g.serial)
		case DupTranslit:
			d.Family = g.respell(d.Family, c)
			for i := range d.Given {
				d.Given[i] = g.respell(d.Given[i], c)
			}
		case DupFamilyChange:
			d.Family = g.pick(c.family)
			if c.feminine != nil && d.Gender == "female" {
				d.Family = c.feminine(d.Family)
			}
			if g.chance(0.5) {
				d.Address = fmt.Sprintf("%d %s, %05d %s", 1+g.rng.IntN(200), g.street(c), g.rng.IntN(100000), g.pick(c.cities))
			}
		case DupSwapNames:
			d.Family, d.Given = d.Given[0], append([]string{d.Family}, d.Given[1:]...)
		case DupNoMiddle:
			if len(d.Given) > 1 {
				d.Given = d.Given[:1]
			} else {
				d.Given = append(d.Given, string([]rune(g.pick(c.male))[:1])) // an initial appears
			}
		case DupDisplayOnly:
			d.Name = strings.Join(append(append([]string(nil), d.Given...), d.Family), " ")
			d.Family, d.Given = "", nil
		case DupMoved:
			d.Address = fmt.Sprintf("%d %s, %05d %s", 1+g.rng.IntN(200), g.street(c), g.rng.IntN(100000), g.pick(c.cities))
			if g.chance(0.5) {
				d.Phone = g.phone(c)
			}
		case DupNoIdentifiers:
			d.Identifiers = nil
		}
		if kind == DupDisplayOnly {
			break // later perturbations would need the structured name
		}
	}
	return d, kinds
}

// typo applies one keyboard slip to a name: a substituted, dropped, doubled or transposed
// letter (never the first, which people rarely get wrong).
func (g *generator) typo(s string) string {
	r := []rune(s)
	if len(r) < 3 {
		return s + "h"
	}
	i := 1 + g.rng.IntN(len(r)-2)
	switch g.rng.IntN(4) {
	case 0: // another letter of the same name, so the slip stays in its script
		r[i] = unicode.ToLower(r[g.rng.IntN(len(r))])
	case 1:
		r = append(r[:i], r[i+1:]...)
	case 2:
		r = append(r[:i+1], r[i:]...)
	default:
		r[i], r[i+1] = r[i+1], r[i]
	}
	return string(r)
}

// typoDigit changes one digit of a YYYY-MM-DD date keeping it a valid date, or returns it.
func (g *generator) typoDigit(s string) string {
	dt, ok := parseDate(s)
	if !ok {
		return s
	}
	for range 20 {
		b := []byte(s)
		pos := []int{2, 3, 6, 8, 9}[g.rng.IntN(5)]
		b[pos] = byte('0' + g.rng.IntN(10))
		if nd, ok := parseDate(string(b)); ok && nd != dt && nd.d <= 28 {
			return string(b)
		}
	}
	return s
}

// nickname returns another member of a nickname group of name (in display case), or "".
func (g *generator) nickname(name string) string {
	toks := nameTokens(name)
	if len(toks) != 1 {
		return ""
	}
	groups := nicknameGroups[toks[0]]
	if len(groups) == 0 {
		return ""
	}
	line := strings.Split(nicknamesText, "\n")[groups[g.rng.IntN(len(groups))]]
	var alts []string
	for _, f := range strings.Fields(line) {
		if nt := nameTokens(f); len(nt) == 1 && nt[0] != toks[0] {
			alts = append(alts, f)
		}
	}
	if len(alts) == 0 {
		return ""
	}
	a := g.pick(alts)
	r, size := utf8.DecodeRuneInString(a)
	return string(unicode.ToUpper(r)) + a[size:]
}

// respell writes a name the way another document or clerk would: another romanisation
// of a Cyrillic or Greek name (or the native script back), umlauts spelt out or dropped,
// diacritics dropped.
func (g *generator) respell(s string, c culture) string {
	if c.script != "" {
		native := !isLatin(s)
		if native {
			return romanise(s, c.script, g.rng.IntN(3))
		}
		return s // already romanised; the native original is not recoverable here
	}
	var b strings.Builder
	spellOut := g.chance(0.5)
	for _, r := range s {
		lower := unicode.ToLower(r)
		out := string(r)
		if f, ok := fold[lower]; ok && r > unicode.MaxASCII {
			out = f
			if spellOut {
				switch lower {
				case 'ä':
					out = "ae"
				case 'ö':
					out = "oe"
				case 'ü':
					out = "ue"
				}
			}
			if unicode.IsUpper(r) && out != "" {
				out = strings.ToUpper(out[:1]) + out[1:]
			}
		}
		b.WriteString(out)
	}
	return b.String()
}

// isLatin reports whether s has no Cyrillic or Greek letter.
func isLatin(s string) bool {
	for _, r := range s {
		if unicode.Is(unicode.Cyrillic, r) || unicode.Is(unicode.Greek, r) {
			return false
		}
	}
	return true
}

// romanSchemes are the romanisations of Cyrillic and Greek the generator uses besides the
// fold table (scheme 0): 1 is ICAO 9303 (passports since 2013) and ELOT-like Greek with
// b/e/u/kh; 2 is German-style Cyrillic (w, j, sch, tsch) and "phonetic" Greek.
var romanSchemes = map[string][2]map[rune]string{
	"cyrillic": {
		{'й': "i", 'ю': "iu", 'я': "ia", 'ы': "y", 'ъ': "ie"},
		{'в': "w", 'й': "j", 'ю': "ju", 'я': "ja", 'ж': "sch", 'ш': "sch", 'ч': "tsch", 'щ': "schtsch", 'х': "ch", 'ё': "jo"},
	},
	"greek": {
		{'β': "b", 'η': "e", 'ή': "e", 'υ': "u", 'ύ': "u", 'χ': "kh", 'φ': "ph"},
		{'γ': "y", 'η': "i", 'χ': "h", 'δ': "dh"},
	},
}

// romanise writes a Cyrillic or Greek name in Latin letters with the given scheme, keeping
// the capital first letter.
func romanise(s, script string, scheme int) string {
	var b strings.Builder
	for _, r := range s {
		lower := unicode.ToLower(r)
		out, ok := "", false
		if scheme > 0 {
			out, ok = romanSchemes[script][scheme-1][lower]
		}
		if !ok {
			out, ok = fold[lower]
		}
		if !ok {
			out = string(lower)
		}
		if unicode.IsUpper(r) && out != "" {
			out = strings.ToUpper(out[:1]) + out[1:]
		}
		b.WriteString(out)
	}
	return b.String()
}

// dobNear draws a date of birth in the year years after s's (a partner, a child).
func (g *generator) dobNear(s string, years int) string {
	dt, _ := parseDate(s)
	return fmt.Sprintf("%04d-%02d-%02d", max(1900, min(2025, dt.y+years)), 1+g.rng.IntN(12), 1+g.rng.IntN(28))
}
