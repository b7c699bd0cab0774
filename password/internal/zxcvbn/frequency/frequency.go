package frequency

import (
	"encoding/json"
	"log"
	"sync"

	"github.com/ccojocar/zxcvbn-go/data"
)

// List holds a frequency list
type List struct {
	Name string
	List []string
}

// Lists returns every frequency list by name. Tutela: upstream decoded the lists (about 10 MB
// of heap) in init, for every command of the binary; here they are decoded on first use.
var Lists = sync.OnceValue(func() map[string]List {
	lists := make(map[string]List)
	maleFilePath := getAsset("data/MaleNames.json")
	femaleFilePath := getAsset("data/FemaleNames.json")
	surnameFilePath := getAsset("data/Surnames.json")
	englishFilePath := getAsset("data/English.json")
	passwordsFilePath := getAsset("data/Passwords.json")

	lists["MaleNames"] = getStringListFromAsset(maleFilePath, "MaleNames")
	lists["FemaleNames"] = getStringListFromAsset(femaleFilePath, "FemaleNames")
	lists["Surname"] = getStringListFromAsset(surnameFilePath, "Surname")
	lists["English"] = getStringListFromAsset(englishFilePath, "English")
	lists["Passwords"] = getStringListFromAsset(passwordsFilePath, "Passwords")
	return lists
})

func getAsset(name string) []byte {
	data, err := data.Asset(name)
	if err != nil {
		panic("Error getting asset " + name)
	}

	return data
}

func getStringListFromAsset(data []byte, name string) List {
	var tempList List
	err := json.Unmarshal(data, &tempList)
	if err != nil {
		log.Fatal(err)
	}
	tempList.Name = name
	return tempList
}
